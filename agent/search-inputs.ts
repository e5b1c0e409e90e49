/** Moved below agent/ and registry/: runtime/node/search-inputs.ts. */
export * from '../runtime/node/search-inputs.js';
