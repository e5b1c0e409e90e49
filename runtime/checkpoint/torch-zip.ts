/**
 * PyTorch's checkpoint format (torch.save since 1.6): a zip archive (entries stored, not
 * compressed) holding `<name>/data.pkl`, a pickle whose tensors refer by persistent id to storages
 * in `<name>/data/<key>`, and `<name>/byteorder`. Read without Python: fflate lists the archive,
 * pickle.ts runs the pickle against an allow-list of torch's rebuild functions.
 */
import { unzipSync } from 'fflate';
import { NestswapError } from '../errors.js';
import { PickleObject, unpickle, type PickleGlobal } from './pickle.js';
import { DTYPE_BYTES, gatherFloat32, type CheckpointTensor } from './tensor.js';

const STORAGE_DTYPES: Readonly<Record<string, string>> = Object.freeze({
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8', BoolStorage: 'bool',
});

interface StorageRef {
  dtype: string;
  bytes: Uint8Array;
}

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

function unzip(bytes: Uint8Array, source: string): Record<string, Uint8Array> {
  try {
    return unzipSync(bytes);
  } catch (cause) {
    throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source} is a damaged or truncated zip archive (${(cause as Error).message}); torch.save writes a complete one.`, { cause });
  }
}

/** Reads a torch.save zip checkpoint; returns the unpickled object, tensors as CheckpointTensor. */
export function readTorchZip(bytes: Uint8Array, source: string): unknown {
  const files = unzip(bytes, source);
  const pklName = Object.keys(files).find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pklName) throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source} is a zip archive but not a PyTorch checkpoint: it has no <name>/data.pkl.`);
  const prefix = pklName.slice(0, -'data.pkl'.length);
  const order = files[`${prefix}byteorder`];
  if (order && new TextDecoder().decode(order).trim() !== 'little')
    throw new NestswapError('ERR_CHECKPOINT_UNSUPPORTED', `${source} was written on a big-endian machine; only little-endian checkpoints are read.`);
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown): StorageRef => {
    if (!Array.isArray(pid) || pid[0] !== 'storage') throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source} has a persistent id that is not a storage.`);
    const [, type, key] = pid as [string, unknown, string];
    const dtype = typeof type === 'string' ? type : (type as { dtype?: string }).dtype;
    if (!dtype) throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source}: storage ${key} has no dtype.`);
    let s = storages.get(key);
    if (!s) {
      const data = files[`${prefix}data/${key}`];
      if (!data) throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source} names storage ${key}, which the archive lacks (truncated or edited).`);
      s = { dtype, bytes: data };
      storages.set(key, s);
    }
    return s;
  };
  const globals = new Map<string, PickleGlobal>();
  // a storage class appears in the persistent id uncalled: the function carries its dtype
  for (const [cls, dtype] of Object.entries(STORAGE_DTYPES)) globals.set(`torch.${cls}`, Object.assign(() => ({ dtype }), { dtype }));
  globals.set('collections.OrderedDict', () => new Map());
  globals.set('torch._utils._rebuild_tensor_v2', (storage, offset, size, stride) => rebuild(storage as StorageRef, offset as number, size as number[], stride as number[], source));
  globals.set('torch._utils._rebuild_tensor', (storage, offset, size, stride) => rebuild(storage as StorageRef, offset as number, size as number[], stride as number[], source));
  globals.set('torch._utils._rebuild_parameter', (data) => data);
  globals.set('torch._utils._rebuild_parameter_with_state', (data) => data);
  globals.set('torch.device', (d) => ({ device: d }));
  globals.set('torch.storage.UntypedStorage', Object.assign(() => ({ dtype: 'uint8' }), { dtype: 'uint8' }));
  globals.set('argparse.Namespace', () => new PickleObject('argparse.Namespace', []));
  return unpickle(files[pklName]!, { globals, persistentLoad, source });
}

function rebuild(storage: StorageRef, offset: number, size: number[], stride: number[], source: string): CheckpointTensor {
  const width = DTYPE_BYTES[storage.dtype];
  if (width === undefined) throw new NestswapError('ERR_CHECKPOINT_UNSUPPORTED', `${source} holds a tensor of dtype ${storage.dtype}, which is not read.`);
  const elements = Math.floor(storage.bytes.length / width);
  let last = offset;
  for (let d = 0; d < size.length; d++) if (size[d]! > 0) last += (size[d]! - 1) * stride[d]!;
  if (size.some((s) => s === 0)) last = offset - 1;
  if (last >= elements) throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source} holds a tensor that reaches past its storage (truncated or edited).`);
  return { dtype: storage.dtype, shape: [...size], data: gatherFloat32(storage.bytes, storage.dtype, offset, size, stride) };
}
