/** Moved below agent/ and registry/: runtime/node/cli.ts. */
export * from '../../runtime/node/cli.js';
