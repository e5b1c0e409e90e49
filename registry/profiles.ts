/**
 * Device profiles as the registry sees them: validated with runtime/profile.ts's parser (the format
 * `nestswap.profile/1` is its), stored exactly as uploaded, summarised for listings, and turned into
 * the search's latency / memory predictors for best-model queries.
 */
import { createHash } from 'node:crypto';
import { checkProfileFor, parseProfile, profileLatencyPredictor, profileMemoryPredictor, type Profile } from '../runtime/profile.js';
import type { LatencyPredictor, MemoryPredictor } from '../runtime/search/index.js';
import type { ProfileSummary } from './protocol.js';

export function profileDigest(json: string): string {
  return createHash('sha256').update(json).digest('hex');
}

/** Validates an uploaded profile (throws ERR_PROFILE_INVALID) and summarises it. */
export function summarizeProfile(value: unknown, bytes: number): { profile: Profile; summary: Omit<ProfileSummary, 'sha256' | 'uploadedAt'> } {
  const p = parseProfile(value, 'uploaded profile');
  return {
    profile: p,
    summary: {
      format: p.format,
      deviceClass: p.deviceClass,
      fingerprint: p.fingerprint,
      ep: p.ep,
      threads: p.threads,
      resolutions: [...p.latency.model.resolutions],
      hasLatency: true,
      hasMemory: p.memory !== undefined && p.memory !== null,
      bytes,
    },
  };
}

export interface ProfilePredictors {
  latency: LatencyPredictor;
  memory?: MemoryPredictor;
}

/** Search predictors of a stored profile, checked to be measured for these weights. */
export function profilePredictors(value: unknown, supernet: { weightsDigest: string; name: string }): ProfilePredictors {
  const p = checkProfileFor(parseProfile(value, 'stored profile'), supernet, 'device profile');
  const memory = profileMemoryPredictor(p);
  return { latency: profileLatencyPredictor(p), ...(memory ? { memory } : {}) };
}
