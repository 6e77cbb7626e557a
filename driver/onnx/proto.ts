/**
 * The part of the ONNX protobuf schema the exporter writes, built with protobufjs reflection
 * (Root.fromJSON) rather than a vendored onnx.proto: ModelProto, GraphProto, NodeProto, AttributeProto,
 * TensorProto, ValueInfoProto, TypeProto.Tensor, TensorShapeProto, OperatorSetIdProto and
 * StringStringEntryProto, with the field numbers of onnx/onnx.proto (proto2; IR version 8). Fields the
 * exporter never sets are left out: protobuf readers skip what a message does not carry.
 */
import { createRequire } from 'node:module';
import type * as Protobuf from 'protobufjs';

type Fields = Record<string, { type: string; id: number; rule?: 'repeated'; options?: Record<string, unknown> }>;
const repeated = (type: string, id: number, packed = false) =>
  ({ type, id, rule: 'repeated' as const, ...(packed ? { options: { packed: true } } : {}) });

const MESSAGES: Record<string, { fields: Fields; nested?: Record<string, { fields: Fields; oneofs?: Record<string, { oneof: string[] }> }> }> = {
  AttributeProto: {
    fields: {
      name: { type: 'string', id: 1 }, f: { type: 'float', id: 2 }, i: { type: 'int64', id: 3 }, s: { type: 'bytes', id: 4 },
      t: { type: 'TensorProto', id: 5 }, g: { type: 'GraphProto', id: 6 },
      floats: repeated('float', 7, true), ints: repeated('int64', 8, true), type: { type: 'int32', id: 20 },
    },
  },
  ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 }, docString: { type: 'string', id: 3 } } },
  NodeProto: {
    fields: {
      input: repeated('string', 1), output: repeated('string', 2), name: { type: 'string', id: 3 },
      opType: { type: 'string', id: 4 }, attribute: repeated('AttributeProto', 5), docString: { type: 'string', id: 6 },
      domain: { type: 'string', id: 7 },
    },
  },
  ModelProto: {
    fields: {
      irVersion: { type: 'int64', id: 1 }, producerName: { type: 'string', id: 2 }, producerVersion: { type: 'string', id: 3 },
      docString: { type: 'string', id: 6 }, graph: { type: 'GraphProto', id: 7 }, opsetImport: repeated('OperatorSetIdProto', 8),
      metadataProps: repeated('StringStringEntryProto', 14),
    },
  },
  StringStringEntryProto: { fields: { key: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
  GraphProto: {
    fields: {
      node: repeated('NodeProto', 1), name: { type: 'string', id: 2 }, initializer: repeated('TensorProto', 5),
      docString: { type: 'string', id: 10 }, input: repeated('ValueInfoProto', 11), output: repeated('ValueInfoProto', 12),
    },
  },
  TensorProto: {
    fields: {
      dims: repeated('int64', 1, true), dataType: { type: 'int32', id: 2 }, name: { type: 'string', id: 8 },
      rawData: { type: 'bytes', id: 9 }, externalData: repeated('StringStringEntryProto', 13), dataLocation: { type: 'int32', id: 14 },
    },
  },
  TensorShapeProto: {
    fields: { dim: repeated('Dimension', 1) },
    nested: {
      Dimension: {
        fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } },
        oneofs: { value: { oneof: ['dimValue', 'dimParam'] } },
      },
    },
  },
  TypeProto: {
    fields: { tensorType: { type: 'Tensor', id: 1 } },
    nested: { Tensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } } },
  },
  OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
};

// protobufjs is loaded on first use (it is CommonJS, so synchronously): every other command starts without it.
let modelProto: Protobuf.Type | undefined;
function ModelProtoType(): Protobuf.Type {
  if (!modelProto) {
    const protobuf = createRequire(import.meta.url)('protobufjs') as typeof Protobuf;
    modelProto = protobuf.Root.fromJSON({ nested: { onnx: { nested: MESSAGES } } }).lookupType('onnx.ModelProto');
  }
  return modelProto;
}

/** TensorProto.DataType values the exporter uses. */
export const DT = { FLOAT: 1, INT64: 7, FLOAT16: 10 } as const;
/** AttributeProto.AttributeType values. */
export const AT = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7 } as const;

// Plain-object shapes of the messages (what ModelProto.fromObject takes).
export interface TensorP { name: string; dims: number[]; dataType: number; rawData?: Uint8Array; externalData?: { key: string; value: string }[]; dataLocation?: number }
export interface AttrP { name: string; type: number; f?: number; i?: number; s?: Uint8Array; t?: TensorP; g?: GraphP; ints?: number[]; floats?: number[] }
export interface NodeP { opType: string; input: string[]; output: string[]; name?: string; attribute?: AttrP[]; docString?: string }
export interface ValueInfoP { name: string; type: { tensorType: { elemType: number; shape: { dim: ({ dimValue: number } | { dimParam: string })[] } } }; docString?: string }
export interface GraphP { name: string; node: NodeP[]; initializer: TensorP[]; input: ValueInfoP[]; output: ValueInfoP[]; docString?: string }
export interface ModelP {
  irVersion: number; producerName: string; producerVersion: string; docString?: string; graph: GraphP;
  opsetImport: { domain: string; version: number }[]; metadataProps?: { key: string; value: string }[];
}

/** The serialized model. */
export function encodeModel(m: ModelP): Uint8Array {
  const ModelProto = ModelProtoType();
  return ModelProto.encode(ModelProto.fromObject(m as unknown as Record<string, unknown>)).finish();
}

/** The model back as plain objects (tests and `inspect`-style checks). */
export function decodeModel(bytes: Uint8Array): ModelP {
  const ModelProto = ModelProtoType();
  return ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, bytes: Uint8Array as never, defaults: false }) as ModelP;
}
