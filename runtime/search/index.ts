/**
 * Constrained subnet search: accuracy predictor × efficiency predictors under a budget.
 * Platform-neutral: predictors and tables are injected.
 */
export { evolutionSearch, OFA_EVOLUTION, FAST_EVOLUTION, type EvolutionOptions } from './evolution.js';
export { exactApplies, exactSearch, type ExactProblem } from './exact.js';
export { islandSearch, sweepSearch, ISLAND_SEARCH, type IslandOptions, type SweepOptions } from './islands.js';
export {
  autoSearch,
  probeLinear,
  LINEAR_TOLERANCE,
  type AutoOptions,
  type AutoResult,
  type LinearProbe,
  type ProbeOptions,
  type SearchMethod,
} from './auto.js';
export { paretoSearch, type ParetoOptions, type ParetoPoint, type ParetoResult } from './nsga2.js';
export {
  CompiledProblem,
  validateBudget,
  METRICS,
  type Budget,
  type MetricName,
  type Predicted,
  type SearchProblem,
  type SearchResult,
} from './problem.js';
export {
  LinearPredictor,
  fitLinearPredictor,
  encoderForPredictor,
  onnxAccuracyPredictor,
  type AccuracyPredictor,
} from './predictors.js';
export {
  buildEfficiencyModel,
  evaluateFlat,
  flatIndex,
  flatLatencyPredictor,
  flatMemoryPredictor,
  flatMinimum,
  macsModel,
  staticMemoryModel,
  validateEfficiencyModel,
  type EfficiencyModel,
  type LatencyPredictor,
  type MemoryPredictor,
} from './efficiency.js';
