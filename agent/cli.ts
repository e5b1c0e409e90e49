/**
 * The `nestswap` command line: a thin shell over the programmatic API. Each command lives in
 * agent/commands/<name>.ts (or registry/commands/) and is imported only when used.
 */
import { NestswapError } from '../runtime/errors.js';
import { debugEnabled, reportError } from './cli-errors.js';

interface CommandInfo {
  summary: string;
  load: () => Promise<{ run(argv: string[]): Promise<number> }>;
}

const COMMANDS: Readonly<Record<string, CommandInfo>> = Object.freeze({
  demo: { summary: 'end-to-end demo: registry + agent + queries + live inference + remote switch', load: () => import('./commands/demo.js') },
  space: { summary: 'print the search space of a supernet package (size, min, max, samples)', load: () => import('./commands/space.js') },
  materialize: { summary: 'turn (supernet, subnet config) into a standalone ONNX model', load: () => import('./commands/materialize.js') },
  predict: { summary: 'predicted accuracy, latency, memory, MACs and params of a subnet', load: () => import('./commands/predict.js') },
  device: { summary: 'discover this device: CPU, memory, GPUs, NPUs, battery, usable execution providers', load: () => import('./commands/device.js') },
  profile: { summary: 'profile this device: latency lookup table + calibration + validation', load: () => import('./commands/profile.js') },
  search: { summary: 'find the best subnet under a latency / memory / MACs budget (or its Pareto front)', load: () => import('./commands/search.js') },
  agent: { summary: 'run the device agent: choose, serve and hot-swap subnets (standalone or with a registry)', load: () => import('./commands/agent.js') },
  registry: { summary: 'run the registry server (HTTP + WebSocket, SQLite storage)', load: () => import('../registry/commands/registry.js') },
  publish: { summary: 'publish a supernet package to a registry (and sign its TUF targets)', load: () => import('../registry/commands/publish.js') },
  keys: { summary: 'make or rotate the TUF keys and root that sign what a registry serves', load: () => import('../registry/commands/keys.js') },
  devices: { summary: 'list the devices enrolled in a registry', load: () => import('../registry/commands/devices.js') },
  query: { summary: 'ask a registry for the best subnet for a device and budget', load: () => import('../registry/commands/query.js') },
  switch: { summary: 'push a subnet or a budget to a device through the registry', load: () => import('../registry/commands/switch.js') },
  import: { summary: 'import a supernet checkpoint (Once-for-All MobileNetV3 / ProxylessNAS) as a nestswap package', load: () => import('./commands/import.js') },
  'init-model': { summary: 'generate a bundled untrained supernet package (ofa-mbv3-w1.0)', load: () => import('./commands/init-model.js') },
});

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`);
  return `Usage: nestswap <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'nestswap <command> --help' for a command's options.\n--verbose (or NESTSWAP_DEBUG=1) with any command prints the stack of an error; without it an error is one line ending in its code.\n`;
}

/** `--verbose` anywhere before a `--` turns on stacks for errors (as NESTSWAP_DEBUG=1 does); it is no command's own option. */
function takeVerbose(argv: string[]): { verbose: boolean; args: string[] } {
  const end = argv.indexOf('--');
  const head = end < 0 ? argv : argv.slice(0, end);
  const args = head.filter((a) => a !== '--verbose');
  return { verbose: args.length !== head.length, args: end < 0 ? args : [...args, ...argv.slice(end)] };
}

export async function main(argv: string[]): Promise<number> {
  const { verbose: v, args } = takeVerbose(argv);
  const verbose = v || debugEnabled();
  const onFatal = (err: unknown) => {
    process.exitCode = reportError(err, verbose);
    process.exit();
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  try {
    return await dispatch(args);
  } catch (err) {
    return reportError(err, verbose);
  }
}

async function dispatch(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name) throw new NestswapError('ERR_USAGE', "No command given. Run 'nestswap --help' for the commands.");
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    const { VERSION } = await import('../runtime/node/version.js');
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) throw new NestswapError('ERR_USAGE', `Unknown command '${name}'. Should be one of: ${Object.keys(COMMANDS).join(', ')}.`);
  const mod = await cmd.load();
  return mod.run(rest);
}
