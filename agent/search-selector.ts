/** The profile + search selectors under Node (the package's accuracy predictor on onnxruntime-node); see core/search-selector.ts and core/ladder-selector.ts. */
import type { SupernetPackage } from '../runtime/package.js';
import type { Profile } from '../runtime/profile.js';
import type { Selector } from './core/types.js';
import { searchSelector } from './core/search-selector.js';
import { keyDigest, ladderSearchSelector, type LadderSelector } from './core/ladder-selector.js';
import type { LadderOptions } from '../runtime/ladder.js';
import type { CoreLogger } from './core/adapters.js';
import { packageSearchInputs } from './search-inputs.js';

export async function profileSearchSelector(pkg: SupernetPackage, profile: Profile): Promise<Selector> {
  return searchSelector(pkg, await packageSearchInputs(pkg, profile));
}

/** The Pareto-ladder selector for a package on a profiled device (the ladder is built before it returns). */
export async function profileLadderSelector(pkg: SupernetPackage, profile: Profile, opts: LadderOptions & { logger?: CoreLogger } = {}): Promise<LadderSelector> {
  const inputs = await packageSearchInputs(pkg, profile);
  const predictor = pkg.manifest.files.find((f) => f.role === 'accuracy-predictor')?.sha256 ?? 'none';
  return ladderSearchSelector(pkg, inputs, { ...opts, profileDigest: keyDigest(JSON.stringify(profile)), predictorDigest: predictor });
}
