/**
 * Seeded OFA-format state_dicts (OFA's tensor names and shapes for a net id) for tests, benchmarks
 * and the bundled untrained family: He-normal convolutions, kernel transformation matrices near
 * identity, BN statistics near neutral. Not trained: a stand-in where no real checkpoint is at hand.
 */
import { supernetTensorShapes } from '../arch.js';
import type { StateDict } from '../checkpoint/index.js';
import { mulberry32 } from '../random.js';
import { ofaArch, ofaTensorNames, parseOfaNetId } from './ofa.js';

export function seededOfaStateDict(netId: string, classes: number, seed = 1): StateDict {
  const net = parseOfaNetId(netId);
  const arch = ofaArch(net, { classes });
  const names = ofaTensorNames(arch, net.kind);
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const sd: StateDict = new Map();
  for (const [ours, shape] of supernetTensorShapes(arch)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (/\.m\d+to\d+$/.test(ours)) {
      const n = shape[0]!;
      for (let i = 0; i < data.length; i++) data[i] = 0.01 * gauss() + (i % (n + 1) === 0 ? 1 : 0);
    } else if (ours.endsWith('running_var')) for (let i = 0; i < data.length; i++) data[i] = 0.5 + rand();
    else if (ours.endsWith('.weight') && shape.length === 1) for (let i = 0; i < data.length; i++) data[i] = 0.8 + 0.4 * rand();
    else if (shape.length === 1) for (let i = 0; i < data.length; i++) data[i] = 0.05 * gauss();
    else {
      const fanOut = (shape[0]! * shape.slice(2).reduce((a, b) => a * b, 1)) / (shape[1] === 1 ? shape[0]! : 1);
      const std = ours === 'classifier.weight' ? 0.01 : Math.sqrt(2 / Math.max(1, fanOut));
      for (let i = 0; i < data.length; i++) data[i] = std * gauss();
    }
    sd.set(names.get(ours)!, { dtype: 'float32', shape: [...shape], data });
  }
  return sd;
}
