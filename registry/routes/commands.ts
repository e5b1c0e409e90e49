/**
 * Commands: POST /v1/devices/:id/commands (admin) stores the command, then rings the doorbell on
 * whichever replica holds the device; `waitMs` waits for the outcome, which any replica may record.
 * GET /v1/commands/:id reads it back.
 */
import { crashPoint } from '../../runtime/crash.js';
import { ApiError } from '../errors.js';
import type { Hub } from '../hub.js';
import { CommandBody, type CommandInfo } from '../protocol.js';
import { newId } from '../store.js';
import { deviceOr404, param, parse, type RouteModule } from './context.js';

/** Waiters for `waitMs`, by command id: one hub listener, so many waiting requests cost one lookup per outcome. */
function outcomes(hub: Hub) {
  const waiters = new Map<string, Set<(c: CommandInfo) => void>>();
  hub.on('command', (c: CommandInfo) => {
    for (const w of waiters.get(c.id) ?? []) w(c);
    waiters.delete(c.id);
  });
  /** Resolves with the command's outcome when the hub hears of it, or undefined after `ms`. */
  return (id: string, ms: number | undefined): { done: Promise<CommandInfo | undefined>; cancel: () => void } => {
    if (!ms) return { done: Promise.resolve(undefined), cancel: () => undefined };
    const set = waiters.get(id) ?? new Set();
    waiters.set(id, set);
    let cancel = () => undefined as void;
    const done = new Promise<CommandInfo | undefined>((resolve) => {
      const finish = (c: CommandInfo | undefined) => {
        cancel();
        resolve(c);
      };
      const timer = setTimeout(() => finish(undefined), ms);
      cancel = () => {
        clearTimeout(timer);
        set.delete(finish);
        if (set.size === 0 && waiters.get(id) === set) waiters.delete(id);
      };
      set.add(finish);
    });
    return { done, cancel };
  };
}

export const commandRoutes: RouteModule = ({ store, hub, queries, auth, parsers }, { api }) => {
  const outcome = outcomes(hub);
  api.post('/devices/:id/commands', parsers.json, async (req, res) => {
    await auth.requireAdmin(req);
    const d = await deviceOr404(store, param(req, 'id'));
    const body = parse(CommandBody, req.body, 'command body');
    const payload: Record<string, unknown> = {};
    if (body.type === 'switch') {
      // check the config against the device's supernet when it is known, so a typo fails here, not on the device
      const v = d.supernet ? await store.version(d.supernet, 'latest') : undefined;
      payload.subnet = v ? (await queries.package(v)).space.parse(body.subnet, 'subnet') : body.subnet;
      if (v) payload.subnetId = (await queries.package(v)).space.id(payload.subnet as never);
    } else if (body.type === 'budget') payload.budget = body.budget;
    const cmd = await store.insertCommand({ id: newId('cmd'), deviceId: d.id, type: body.type, payload });
    crashPoint('registry-command-stored');
    // listen before the push, so an outcome that comes back at once is not missed
    const wait = outcome(cmd.id, body.waitMs);
    try {
      await hub.push(cmd);
    } catch (err) {
      wait.cancel();
      throw err;
    }
    const c = (await wait.done) ?? (await store.command(cmd.id))!;
    res.status(c.status === 'acked' || c.status === 'failed' ? 200 : 202).json(c);
  });

  api.get('/commands/:id', async (req, res) => {
    const c = await store.command(param(req, 'id'));
    const who = await auth.principal(req);
    if (!c) throw new ApiError(404, 'ERR_NOT_FOUND', `No command '${param(req, 'id')}'.`);
    if (who.kind === 'device' && who.device.id !== c.deviceId) throw new ApiError(403, 'ERR_FORBIDDEN', 'A device may only read its own commands.');
    res.json(c);
  });
};
