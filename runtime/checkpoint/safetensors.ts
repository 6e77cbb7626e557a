/**
 * safetensors: u64 LE header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]},
 * __metadata__?: {string: string}}`, then the raw little-endian bytes, offsets relative to the end of the
 * header. The reader parses only the header; tensor bytes are read on demand (see reader.ts). The writer
 * is Node only (safetensors-write.ts).
 */
import { clip } from '../../kernels/errors.ts';
import { describeValue, inputError, unsupportedFormat } from './errors.ts';
import { DTYPE_BYTES, numelOf, shapeStr, type StoredDType, type StoredTensor } from './dtypes.ts';
import { le, readAt, type ByteSource } from './source.ts';

const FROM_ST: Record<string, StoredDType> = { F32: 'f32', F16: 'f16', BF16: 'bf16', I32: 'i32', F64: 'f64', I64: 'i64' };
export const TO_ST: Record<StoredDType, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32', f64: 'F64', i64: 'I64' };

/** The reference implementation refuses headers over 100 MB; a bigger one is corruption, not a model. */
const MAX_HEADER = 100_000_000;

/** A header is a flat object of small objects (depth 3 at most); anything far deeper is not a header. */
const MAX_DEPTH = 64;

/** How deep `[`/`{` nest in JSON text, outside strings: checked before anything walks the parsed value. */
function jsonDepth(text: string): number {
  let depth = 0, max = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

export interface SafetensorsHeader {
  tensors: StoredTensor[];
  metadata: Record<string, string>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function readSafetensorsHeader(f: ByteSource): SafetensorsHeader {
  const fail = (what: string | undefined, problem: string) => inputError(f.name, what, problem);
  if (f.size < 8) throw fail(undefined, `truncated file: ${f.size} bytes, too short for a safetensors header`);
  // A safetensors header is a JSON object, so byte 8 is `{`; anything else is some other format, and its
  // first 8 bytes are no header length (saying "truncated" about them would mislead).
  if (f.size > 8 && readAt(f, 8, 1)[0] !== 0x7b) throw unsupportedFormat(f.name);
  const len = le(readAt(f, 0, 8)).getBigUint64(0, true);
  if (len > BigInt(f.size - 8)) throw fail(undefined, `truncated file: header length ${len} is past the end of the file (size ${f.size})`);
  if (len > BigInt(MAX_HEADER)) throw fail(undefined, `header length ${len} is over the ${MAX_HEADER}-byte limit`);
  const headerLen = Number(len);

  let header: unknown;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(readAt(f, 8, headerLen));
  } catch (e) {
    throw fail(undefined, `bad header JSON: ${(e as Error).message}`);
  }
  if (jsonDepth(text) > MAX_DEPTH) throw fail(undefined, `bad header JSON: nested more than ${MAX_DEPTH} deep`);
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw fail(undefined, `bad header JSON: ${(e as Error).message}`);
  }
  if (!isObject(header)) throw fail(undefined, 'bad header JSON: not an object');

  const dataStart = 8 + headerLen;
  const tensors: StoredTensor[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string')) {
        throw fail(name, 'must be an object of strings');
      }
      metadata = Object.fromEntries(Object.entries(v) as [string, string][]); // a "__proto__" key stays plain data
      continue;
    }
    if (!isObject(v)) throw fail(name, 'header entry is not an object');
    const dtype = typeof v.dtype === 'string' ? FROM_ST[v.dtype] : undefined;
    if (!dtype) throw fail(name, `unknown dtype ${describeValue(v.dtype)} (supported: ${Object.keys(FROM_ST).join(', ')})`);
    const shape = v.shape;
    const numel = Array.isArray(shape) ? numelOf(shape) : undefined;
    if (numel === undefined) throw fail(name, `bad shape ${describeValue(shape)}`);
    const offs = v.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[0] > offs[1]) {
      throw fail(name, `bad data_offsets ${describeValue(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const nbytes = numel * DTYPE_BYTES[dtype];
    if (end - begin !== nbytes) {
      throw fail(name, `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${shapeStr(shape as number[])} of ${v.dtype} needs ${nbytes}`);
    }
    if (dataStart + end > f.size) {
      throw fail(name, `truncated file: tensor bytes end at byte ${dataStart + end}, past the end of the file (size ${f.size})`);
    }
    tensors.push({ name, dtype, shape: shape as number[], offset: dataStart + begin, nbytes });
  }
  refuseOverlaps(tensors, fail);
  return { tensors, metadata };
}

/**
 * The format forbids tensors sharing bytes. Refusing overlaps also bounds memory: without it, a small file
 * could declare hundreds of tensors over the same bytes and reading them all would take many times its
 * size. Empty tensors occupy nothing and may sit anywhere.
 */
function refuseOverlaps(tensors: StoredTensor[], fail: (what: string | undefined, problem: string) => Error): void {
  const placed = tensors.filter((t) => t.nbytes > 0).sort((a, b) => a.offset - b.offset || a.nbytes - b.nbytes);
  for (let i = 1; i < placed.length; i++) {
    const prev = placed[i - 1]!, t = placed[i]!;
    if (t.offset < prev.offset + prev.nbytes) {
      const how = t.offset === prev.offset && t.nbytes === prev.nbytes ? 'has the same bytes as' : 'overlaps';
      throw fail(t.name, `data_offsets ${how} tensor ${clip(prev.name, 200)} (tensors may not share bytes)`);
    }
  }
}
