/**
 * Reads a checkpoint's state_dict natively: PyTorch's zip format (`torch.save`, either
 * `{'state_dict': ...}` as Once-for-All's zoo ships it or a bare state_dict) or safetensors.
 */
import { NestswapError } from '../errors.js';
import { looksLikeSafetensors, readSafetensors } from './safetensors.js';
import type { CheckpointTensor, StateDict } from './tensor.js';
import { isZip, readTorchZip } from './torch-zip.js';

export type { CheckpointTensor, StateDict } from './tensor.js';

function isTensor(v: unknown): v is CheckpointTensor {
  return typeof v === 'object' && v !== null && 'data' in v && (v as CheckpointTensor).data instanceof Float32Array;
}

/** The state_dict inside an unpickled object: itself, or its 'state_dict' / 'model' entry. */
function findStateDict(obj: unknown, source: string): StateDict {
  if (obj instanceof Map) {
    for (const key of ['state_dict', 'model', 'net'])
      if (obj.get(key) instanceof Map) return findStateDict(obj.get(key), source);
    const out: StateDict = new Map();
    for (const [k, v] of obj) if (typeof k === 'string' && isTensor(v)) out.set(k.startsWith('module.') ? k.slice(7) : k, v);
    if (out.size) return out;
  }
  throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source} holds no state_dict (a dict of tensors, or {'state_dict': ...}).`);
}

export function readCheckpoint(bytes: Uint8Array, source = 'checkpoint'): StateDict {
  if (isZip(bytes)) return findStateDict(readTorchZip(bytes, source), source);
  if (looksLikeSafetensors(bytes)) return readSafetensors(bytes, source);
  if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1]! <= 5)
    throw new NestswapError('ERR_CHECKPOINT_UNSUPPORTED', `${source} is a legacy (pre-1.6) torch.save file; re-save it with a current PyTorch (torch.save(torch.load(f), f)).`);
  throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source} is neither a PyTorch checkpoint (zip) nor a safetensors file (${bytes.length} bytes).`);
}
