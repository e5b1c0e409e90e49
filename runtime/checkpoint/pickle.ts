/**
 * A minimal, safe unpickler for what `torch.save` writes (pickle protocols 2-5): dicts, lists,
 * tuples, strings, numbers, OrderedDict, tensors rebuilt from persistent storage ids. Globals are
 * resolved through an allow-list given by the caller; anything else is refused (a pickle is code,
 * so nothing outside the list ever runs).
 */
import { NestswapError } from '../errors.js';

/** A global the pickle may call: `module name` -> function of its REDUCE arguments. */
export type PickleGlobal = (...args: unknown[]) => unknown;

export interface UnpickleOptions {
  /** Allowed globals, keyed `module.name`. */
  globals: ReadonlyMap<string, PickleGlobal>;
  /** Resolves a persistent id (torch: storage descriptors). */
  persistentLoad: (pid: unknown) => unknown;
  /** For messages. */
  source: string;
}

const MARK = Symbol('mark');

/** An object made by a global whose class needs BUILD (`__setstate__`); the state is kept. */
export class PickleObject {
  state: unknown;
  constructor(readonly className: string, readonly args: unknown[]) {}
}

function fail(source: string, msg: string): never {
  throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source} is not a readable checkpoint: ${msg}.`);
}

export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): unknown {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder('utf-8', { fatal: false });
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > bytes.length) fail(opts.source, `the pickle ends inside an instruction at byte ${pos} (truncated)`);
  };
  const u8 = () => (need(1), bytes[pos++]!);
  const u16 = () => (need(2), (pos += 2), dv.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), dv.getInt32(pos - 4, true));
  const str = (n: number) => (need(n), (pos += n), text.decode(bytes.subarray(pos - n, pos)));
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail(opts.source, 'a text field has no end (truncated)');
    const s = text.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = () => {
    if (!stack.length) fail(opts.source, `stack underflow at byte ${pos}`);
    return stack.pop();
  };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail(opts.source, `no mark at byte ${pos}`);
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const top = () => {
    if (!stack.length) fail(opts.source, `stack underflow at byte ${pos}`);
    return stack[stack.length - 1];
  };
  const global = (mod: string, name: string): unknown => {
    const key = `${mod}.${name}`;
    const fn = opts.globals.get(key);
    if (!fn) throw new NestswapError('ERR_CHECKPOINT_UNSUPPORTED', `${opts.source} uses '${key}', which a checkpoint of tensors does not need; it is not loaded.`);
    return fn;
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) fail(opts.source, 'SETITEM on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const long = (n: number): number => {
    need(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[pos + i]!);
    if (n > 0 && bytes[pos + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    pos += n;
    return Number(v);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: pos += 8; break; // FRAME
      case 0x2e: return pop(); // STOP
      case 0x28: stack.push(MARK); break; // MARK
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x64: { const it = popMark(); const m = new Map(); setItems(m, it); stack.push(m); break; } // DICT
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); stack.push([pop(), b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); stack.push([pop(), b, c]); break; } // TUPLE3
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x8a: stack.push(long(u8())); break; // LONG1
      case 0x8b: stack.push(long(u32())); break; // LONG4
      case 0x47: need(8); stack.push(dv.getFloat64(pos, false)); pos += 8; break; // BINFLOAT
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: { const n = Number(dv.getBigUint64((need(8), pos), true)); pos += 8; stack.push(str(n)); break; } // BINUNICODE8
      case 0x55: stack.push(str(u8())); break; // SHORT_BINSTRING
      case 0x54: stack.push(str(u32())); break; // BINSTRING
      case 0x43: { const n = u8(); need(n); stack.push(bytes.subarray(pos, pos + n)); pos += n; break; } // SHORT_BINBYTES
      case 0x42: { const n = u32(); need(n); stack.push(bytes.subarray(pos, pos + n)); pos += n; break; } // BINBYTES
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(opts.source, `memo ${k} is used before it is set`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: { const mod = line(); stack.push(global(mod, line())); break; } // GLOBAL
      case 0x93: { const name = pop() as string; stack.push(global(pop() as string, name)); break; } // STACK_GLOBAL
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (typeof fn !== 'function' || !Array.isArray(args)) fail(opts.source, `REDUCE of something not callable at byte ${pos}`);
        stack.push((fn as PickleGlobal)(...(args as unknown[])));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop();
        const cls = pop();
        if (typeof cls !== 'function' || !Array.isArray(args)) fail(opts.source, `NEWOBJ of something not a class at byte ${pos}`);
        stack.push((cls as PickleGlobal)(...(args as unknown[])));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PickleObject) obj.state = state;
        else if (obj instanceof Map && state instanceof Map) for (const [k, v] of state) obj.set(k, v);
        // tensors and OrderedDicts get empty or metadata state from torch: nothing to apply
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const it = popMark(); setItems(top(), it); break; } // SETITEMS
      case 0x61: { const v = pop(); const l = top(); if (!Array.isArray(l)) fail(opts.source, 'APPEND to a non-list'); l.push(v); break; } // APPEND
      case 0x65: { const it = popMark(); const l = top(); if (!Array.isArray(l)) fail(opts.source, 'APPENDS to a non-list'); l.push(...it); break; } // APPENDS
      case 0x51: stack.push(opts.persistentLoad(pop())); break; // BINPERSID
      case 0x50: stack.push(opts.persistentLoad(line())); break; // PERSID
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      default:
        fail(opts.source, `pickle opcode 0x${op.toString(16)} at byte ${pos - 1} is not one torch.save writes`);
    }
  }
}
