#!/usr/bin/env node
import('../dist/agent/cli.js').then((m) => m.main(process.argv.slice(2))).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`nestswap: ${err && err.stack ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
