/**
 * The registry's route modules, in mount order. To add a resource: write registry/routes/<name>.ts
 * exporting a RouteModule (it receives the store, blob, bus and auth interfaces in its context)
 * and add it here; the server mounts every entry, then the 404 and error handlers.
 */
import { classRoutes } from './classes.js';
import { commandRoutes } from './commands.js';
import type { RouteModule } from './context.js';
import { deviceRoutes } from './devices.js';
import { metaRoutes } from './meta.js';
import { queryRoutes } from './query.js';
import { statsRoutes } from './stats.js';
import { supernetRoutes } from './supernets.js';
import { frontRoutes } from './front.js';
import { webRoutes } from './web.js';

export const ROUTES: readonly RouteModule[] = Object.freeze([metaRoutes, supernetRoutes, deviceRoutes, classRoutes, commandRoutes, queryRoutes, statsRoutes, frontRoutes, webRoutes]);

export type { RouteContext, RouteModule } from './context.js';
