/** The profile + search selector under Node (the package's accuracy predictor on onnxruntime-node); see core/search-selector.ts. */
import type { SupernetPackage } from '../runtime/package.js';
import type { Profile } from '../runtime/profile.js';
import type { Selector } from './core/types.js';
import { searchSelector } from './core/search-selector.js';
import { packageSearchInputs } from './search-inputs.js';

export async function profileSearchSelector(pkg: SupernetPackage, profile: Profile): Promise<Selector> {
  return searchSelector(pkg, await packageSearchInputs(pkg, profile));
}
