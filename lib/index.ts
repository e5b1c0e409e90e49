/**
 * nestswap as a library: the same parts the CLI and the agent use.
 *
 *   import { loadSupernet, profileDevice, startAgent } from 'nestswap';
 *
 * Everything here is also reachable by its module path; this file only names the stable surface.
 */
export { NestswapError, isNestswapError } from '../runtime/errors.js';
export { SupernetPackage } from '../runtime/package.js';
export { Space, type SubnetConfig } from '../runtime/space.js';
export { Materializer, type MaterializedSubnet, type MaterializeOptions } from '../runtime/materializer.js';
export { ModelSession, type Backend, type SessionOptions, type RunOutput } from '../runtime/session.js';
export { HotSwapper, type SwapRecord, type InferResult } from '../runtime/hot-swap.js';
export { autoSearch, evolutionSearch, exactSearch, paretoSearch, probeLinear, FAST_EVOLUTION, OFA_EVOLUTION, type Budget } from '../runtime/search/index.js';
export { loadPackageDir } from '../runtime/node/fs-source.js';
export { readCheckpoint, type StateDict, type CheckpointTensor } from '../runtime/checkpoint/index.js';
export { importOfaCheckpoint, type ImportOfaOptions, type ImportOfaResult } from '../runtime/node/import-ofa.js';
export { nodeBackend } from '../runtime/node/ort-node.js';
export { workerBackend, type WorkerBackend } from '../runtime/node/ort-worker.js';
export { loadSupernet } from '../agent/packages.js';
export { currentDeviceIdentity, discoverDevice } from '../agent/device.js';
export { loadOrProfile, profileDevice } from '../agent/profiler.js';
export { profileSearchSelector } from '../agent/search-selector.js';
export { startDaemon as startAgent, ladderSelector, type DaemonHandle as Agent, type DaemonOptions as AgentOptions, type Selector, type SubnetChoice } from '../agent/daemon.js';
export { startRegistry, type RegistryHandle } from '../registry/server.js';
