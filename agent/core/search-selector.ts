/**
 * The agent's selector from DESIGN's data flow: a device profile (calibrated latency + memory
 * predictors) and the package's accuracy predictor, searched with the default search (autoSearch) under the
 * effective budget. Choices are cached per (rounded) budget so repeated windows cost nothing.
 * Platform-neutral: the accuracy predictor is loaded by the platform (onnxruntime-node or -web).
 */
import { countMacs } from '../../runtime/cost.js';
import { isNestswapError } from '../../runtime/errors.js';
import type { SupernetPackage } from '../../runtime/package.js';
import { autoSearch } from '../../runtime/search/index.js';
import type { SearchInputs } from '../../runtime/search/inputs.js';
import type { SubnetConfig } from '../../runtime/space.js';
import type { UserBudget } from '../policy.js';
import type { Selector, SubnetChoice } from './types.js';

export function searchSelector(pkg: SupernetPackage, inputs: SearchInputs): Selector {
  const { latency, memory } = inputs.efficiency;
  const problem = { arch: inputs.arch, predictor: inputs.predictor, encoder: inputs.encoder, ...inputs.efficiency };
  const cache = new Map<string, SubnetChoice>();
  const predictOne = (cfg: SubnetConfig) => ({
    latencyMs: latency ? latency.latencyMs(cfg) : null,
    memoryMB: memory ? memory.memoryMB(cfg) : null,
    accuracy: null as number | null,
  });
  return {
    kind: 'profile+search',
    predict: predictOne,
    async choose(budget: UserBudget): Promise<SubnetChoice> {
      const key = `${budget.latencyMs?.toPrecision(3)}/${budget.memoryMB?.toPrecision(3)}`;
      const hit = cache.get(key);
      if (hit) return hit;
      const b: { latencyMs?: number; memoryMB?: number } = {};
      if (budget.latencyMs !== undefined) b.latencyMs = budget.latencyMs;
      if (budget.memoryMB !== undefined) b.memoryMB = budget.memoryMB;
      let choice: SubnetChoice;
      try {
        const r = await autoSearch(problem, b, { seed: 0 });
        choice = { subnetId: pkg.space.id(r.subnet), config: r.subnet, predicted: { latencyMs: r.predicted.latencyMs, memoryMB: r.predicted.memoryMB, accuracy: r.predicted.accuracy }, score: r.predicted.accuracy, feasible: true };
      } catch (err) {
        if (!isNestswapError(err, 'ERR_BUDGET_INFEASIBLE')) throw err;
        // Nothing fits the live budget: serve the cheapest subnet and say so.
        const cfg = pkg.space.min();
        choice = { subnetId: pkg.space.id(cfg), config: cfg, predicted: predictOne(cfg), score: -countMacs(pkg.arch, cfg), feasible: false };
      }
      cache.set(key, choice);
      return choice;
    },
  };
}
