/** Moved below agent/ and registry/: runtime/node/packages.ts. */
export * from '../runtime/node/packages.js';
