/**
 * A small ONNX graph builder: named values, initializers as raw little-endian bytes, and a
 * serializer to ModelProto bytes (opset 17, IR 8).
 */
import { AttributeType, DataType, GraphProto, ModelProto, TensorProto } from './proto.js';

export const OPSET = 17;
export const IR_VERSION = 8;

type AttrValue = number | number[] | string | { floats: number[] } | { int: number } | { float: number };

interface Node {
  op_type: string;
  domain?: string;
  input: string[];
  output: string[];
  name: string;
  attribute: Record<string, unknown>[];
}

interface Initializer {
  name: string;
  dims: number[];
  data_type: number;
  raw_data: Uint8Array;
}

export interface ValueInfo {
  name: string;
  dims: (number | string)[];
  elemType?: number;
}

function attribute(name: string, v: AttrValue): Record<string, unknown> {
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: AttributeType.INTS, ints: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: AttributeType.INT, i: v } : { name, type: AttributeType.FLOAT, f: v };
  if ('floats' in v) return { name, type: AttributeType.FLOATS, floats: v.floats };
  if ('int' in v) return { name, type: AttributeType.INT, i: v.int };
  return { name, type: AttributeType.FLOAT, f: v.float };
}

function varintLength(n: number): number {
  let k = 1;
  for (; n >= 0x80; n = Math.floor(n / 128)) k++;
  return k;
}

function bytesOf(a: Float32Array | BigInt64Array | Int32Array): Uint8Array {
  // Typed arrays are little-endian on every platform onnxruntime ships for.
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly inits: Initializer[] = [];
  private readonly names = new Set<string>();
  /** operator sets other than ONNX's own that nodes use (imported at version 1) */
  private readonly domains = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    let n = `${prefix}`;
    while (this.names.has(n)) n = `${prefix}_${++this.counter}`;
    this.names.add(n);
    return n;
  }

  floatTensor(prefix: string, data: Float32Array, dims: number[]): string {
    const name = this.fresh(prefix);
    this.inits.push({ name, dims, data_type: DataType.FLOAT, raw_data: bytesOf(data) });
    return name;
  }

  int64Tensor(prefix: string, data: number[]): string {
    const name = this.fresh(prefix);
    this.inits.push({ name, dims: [data.length], data_type: DataType.INT64, raw_data: bytesOf(BigInt64Array.from(data.map(BigInt))) });
    return name;
  }

  scalar(prefix: string, value: number): string {
    return this.floatTensor(prefix, Float32Array.of(value), []);
  }

  /** Adds a node of operator set `domain` (version 1); returns its output name. */
  opIn(domain: string, opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.opOutputs(opType, inputs, attrs, [undefined], domain)[0]!;
  }

  /** Adds a node; returns its (first) output name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outName?: string, nOut = 1): string {
    const names = Array.from({ length: nOut }, (_, i) => (i === 0 ? outName : undefined));
    return this.opOutputs(opType, inputs, attrs, names)[0]!;
  }

  /** A node with several outputs; `outNames[i]` names output i (a fresh name where undefined). */
  opOutputs(opType: string, inputs: string[], attrs: Record<string, AttrValue>, outNames: (string | undefined)[], domain?: string): string[] {
    const outs = Array.from(outNames, (n) => (n ? this.claim(n) : this.fresh(`${opType.toLowerCase()}`)));
    if (domain) this.domains.add(domain);
    this.nodes.push({
      op_type: opType,
      ...(domain ? { domain } : {}),
      input: inputs,
      output: outs,
      name: `${opType}_${this.nodes.length}`,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`value name '${name}' already used`);
    this.names.add(name);
    return name;
  }

  reserve(name: string): string {
    return this.claim(name);
  }

  /** Serializes to ONNX ModelProto bytes. */
  build(inputs: ValueInfo[], outputs: ValueInfo[], metadata: Record<string, string> = {}): Uint8Array {
    const vi = (v: ValueInfo) => ({
      name: v.name,
      type: {
        tensor_type: {
          elem_type: v.elemType ?? DataType.FLOAT,
          shape: { dim: v.dims.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d })) },
        },
      },
    });
    const graph = {
      name: this.name,
      node: this.nodes,
      input: inputs.map(vi),
      output: outputs.map(vi),
    };
    const model = {
      ir_version: IR_VERSION,
      opset_import: [{ domain: '', version: OPSET }, ...[...this.domains].map((domain) => ({ domain, version: 1 }))],
      producer_name: 'nestswap',
      producer_version: '0.1.0',
      metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    };
    // A protobuf message is the concatenation of its fields, in any order. protobufjs encodes the small
    // parts; the initializers' raw bytes (nearly all of a model) are written once, straight into the
    // result, where protobufjs would copy them twice (into its writer, then into the finished buffer).
    const modelHead = ModelProto.encode(ModelProto.fromObject(model)).finish();
    const graphHead = GraphProto.encode(GraphProto.fromObject(graph)).finish();
    const tensors = this.inits.map((t) => {
      const head = TensorProto.encode(TensorProto.fromObject({ dims: t.dims, data_type: t.data_type, name: t.name })).finish();
      const size = head.length + 1 + varintLength(t.raw_data.length) + t.raw_data.length;
      return { head, raw: t.raw_data, size };
    });
    const graphSize = tensors.reduce((a, t) => a + 1 + varintLength(t.size) + t.size, graphHead.length);
    const out = new Uint8Array(modelHead.length + 1 + varintLength(graphSize) + graphSize);
    let at = 0;
    const put = (b: Uint8Array) => {
      out.set(b, at);
      at += b.length;
    };
    const tagAndLength = (field: number, n: number) => {
      out[at++] = (field << 3) | 2; // length-delimited; fields 5, 7 and 9 fit one byte
      for (; n >= 0x80; n = Math.floor(n / 128)) out[at++] = (n % 128) | 0x80;
      out[at++] = n;
    };
    put(modelHead);
    tagAndLength(7, graphSize); // ModelProto.graph
    put(graphHead);
    for (const t of tensors) {
      tagAndLength(5, t.size); // GraphProto.initializer
      put(t.head);
      tagAndLength(9, t.raw.length); // TensorProto.raw_data
      put(t.raw);
    }
    return out;
  }
}
