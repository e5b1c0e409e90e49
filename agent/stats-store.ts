/** Moved below agent/ and registry/: runtime/node/stats-store.ts. */
export * from '../runtime/node/stats-store.js';
