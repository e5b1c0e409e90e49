/** What a search needs, from a package's loaded accuracy predictor and a device profile (platform-neutral). */
import type { Arch } from '../arch.js';
import type { SupernetPackage } from '../package.js';
import { checkProfileFor, profileLatencyPredictor, profileMemoryPredictor, type Profile } from '../profile.js';
import type { ArchEncoder } from '../space.js';
import { flatMemoryPredictor, staticMemoryModel, type LatencyPredictor, type MemoryPredictor } from './efficiency.js';
import type { AccuracyPredictor } from './predictors.js';

/** What a search needs, however it was obtained (files, or a supernet package + device profile). */
export interface SearchInputs {
  arch: Arch;
  predictor: AccuracyPredictor;
  encoder: ArchEncoder;
  efficiency: { latency?: LatencyPredictor; memory?: MemoryPredictor };
}

/**
 * Search inputs for a supernet package on a device: its accuracy predictor (loaded by the platform:
 * onnxruntime-node or -web), the profile's calibrated latency and memory predictors when a profile
 * is given, MACs always.
 */
export function searchInputsFor(pkg: SupernetPackage, accuracy: { predictor: AccuracyPredictor; encoder: ArchEncoder }, profile?: Profile): SearchInputs {
  const efficiency: SearchInputs['efficiency'] = {};
  if (profile) {
    checkProfileFor(profile, pkg);
    efficiency.latency = profileLatencyPredictor(profile);
    const memory = profileMemoryPredictor(profile);
    if (memory) efficiency.memory = memory;
  }
  if (!efficiency.memory) efficiency.memory = flatMemoryPredictor(staticMemoryModel(pkg.arch, pkg.space.image_size_list));
  return { arch: pkg.arch, predictor: accuracy.predictor, encoder: accuracy.encoder, efficiency };
}
