/**
 * State files: the recurrent state of a session, saved so a conversation can resume later. The bytes
 * are a safetensors file (readable by any tool) whose metadata names the format, its version and a
 * hash of the model config; a state from another model is refused instead of silently mixed in. Version 2
 * adds a CRC-32 of the tensor bytes; version 1 files (without it) are still read.
 */
import type { ModelConfig } from '../kernels/config.ts';
import type { StateTensors } from '../targets/backend.ts';
import { UserError } from '../kernels/errors.ts';

const STATE_FORMAT = 'rwkvc-state';
const STATE_VERSION = 2;

/** FNV-1a over the config's canonical JSON: stable across machines, no crypto module needed in browsers. */
function configHash(cfg: ModelConfig): string {
  const keys = Object.keys(cfg).sort() as (keyof ModelConfig)[];
  const text = JSON.stringify(keys.map((k) => [k, cfg[k]]));
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/**
 * The state tensors a model of `cfg` has, with their value counts: state.{l}.att_shift [C],
 * state.{l}.wkv [H·N·N], state.{l}.ffn_shift [C] (QRWKV6: no ffn_shift, its MLP has no token shift).
 */
function expectedState(cfg: ModelConfig): Map<string, number> {
  const m = new Map<string, number>();
  for (let l = 0; l < cfg.nLayer; l++) {
    m.set(`state.${l}.att_shift`, cfg.nEmbd);
    m.set(`state.${l}.wkv`, cfg.nHead * cfg.headSize * cfg.headSize);
    if ((cfg as { family?: string }).family !== 'qrwkv6') m.set(`state.${l}.ffn_shift`, cfg.nEmbd);
  }
  return m;
}

let crcTable: Uint32Array | undefined;
/** CRC-32 (the ZIP/PNG polynomial) of `b`, as 8 hex digits. */
export function crc32(b: Uint8Array): string {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return ((c ^ 0xffffffff) >>> 0).toString(16).padStart(8, '0');
}

/** A value from the file, quoted for a message: one short line whatever it holds. */
function quote(v: unknown): string {
  let s: string;
  try { s = typeof v === 'string' ? v : String(JSON.stringify(v)); } catch { s = typeof v; }
  if (s.length > 60) s = `${s.slice(0, 60)}…`;
  return `'${s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}'`;
}

/**
 * Version 2 (this writer): a safetensors file, metadata {format, version: "2", config, crc32}, one F32
 * tensor per state tensor, packed in name order from offset 0 with no gaps; crc32 is the CRC-32 of the
 * tensors' bytes taken in name order. Version 1 files (no crc32, so no check of the bytes) are still read.
 */
export function encodeState(state: StateTensors, cfg: ModelConfig): Uint8Array {
  const names = Object.keys(state).sort();
  let off = 0;
  const entries: Record<string, unknown> = {};
  for (const n of names) {
    const len = state[n].length * 4;
    entries[n] = { dtype: 'F32', shape: [state[n].length], data_offsets: [off, off + len] };
    off += len;
  }
  const data = new Uint8Array(off);
  let p = 0;
  for (const n of names) {
    data.set(new Uint8Array(state[n].buffer, state[n].byteOffset, state[n].byteLength), p);
    p += state[n].byteLength;
  }
  const header = {
    __metadata__: { format: STATE_FORMAT, version: String(STATE_VERSION), config: configHash(cfg), crc32: crc32(data) },
    ...entries,
  };
  const text = JSON.stringify(header);
  const bytes = new TextEncoder().encode(text);
  const json = new TextEncoder().encode(text + ' '.repeat((8 - (bytes.length % 8)) % 8));
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/**
 * The state in `bytes` (any Uint8Array view, a Node Buffer included), checked whole before anything is
 * returned: header shape, format, version, model, every tensor of this model present once with its name,
 * dtype, size and in-bounds, aligned, non-overlapping offsets, nothing unknown, and (version 2) the
 * checksum of the tensor bytes. Returns fresh, complete tensors, so a restore is all or nothing; any
 * problem is one UserError line starting with `source`.
 */
export function decodeState(bytes: Uint8Array, cfg: ModelConfig, source = 'state'): StateTensors {
  const bad = (why: string): never => { throw new UserError(`${source}: ${why}`); };
  if (!(bytes instanceof Uint8Array)) bad('not a state file (expected bytes)');
  if (bytes.length < 8) bad('not a state file (too short)');
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (n64 > BigInt(bytes.length - 8)) bad('not a state file (header length past the end)');
  const n = Number(n64);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch {
    return bad('not a state file (header is not JSON)');
  }
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(header)) return bad('not a state file (header is not a JSON object)');
  const meta = header.__metadata__;
  if (!isObj(meta)) return bad('not an rwkvc state file (no __metadata__)');
  if (meta.format !== STATE_FORMAT) bad(`not an rwkvc state file (format ${quote(meta.format)})`);
  const version = meta.version;
  if (version !== '1' && version !== String(STATE_VERSION)) {
    bad(`state file version ${typeof version === 'string' ? quote(version).slice(1, -1) : quote(version)}; this rwkvc reads versions 1 and ${STATE_VERSION}`);
  }
  if (meta.config !== configHash(cfg)) bad(`the state belongs to another model (config hash ${quote(meta.config)}, this model ${configHash(cfg)})`);
  const want = expectedState(cfg);
  const base = 8 + n;
  const dataLen = bytes.length - base;
  const spans: [number, number, string][] = [];
  for (const name of Object.keys(header)) {
    if (name === '__metadata__') continue;
    const size = want.get(name);
    if (size === undefined) return bad(`unknown tensor ${quote(name)} (not a state of this model)`);
    const t = header[name];
    if (!isObj(t)) return bad(`${name}: damaged tensor entry (not an object)`);
    if (t.dtype !== 'F32') bad(`${name}: dtype ${quote(t.dtype)}, expected F32`);
    const shape = t.shape;
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(`${name}: bad shape ${quote(shape)}`);
    const numel = (shape as number[]).reduce((a, d) => a * d, 1);
    if (numel !== size) bad(`${name}: shape ${quote(shape)} has ${numel} values, this model's state has ${size}`);
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x))) return bad(`${name}: bad data_offsets ${quote(off)}`);
    const [a, b] = off as [number, number];
    if (a < 0 || b < a) bad(`${name}: bad data_offsets ${quote(off)}`);
    if (a % 4) bad(`${name}: data offset ${a} is not 4-byte aligned`);
    if (b - a !== size * 4) bad(`${name}: data_offsets ${quote(off)} hold ${b - a} bytes, the shape needs ${size * 4}`);
    if (b > dataLen) bad(`${name}: data_offsets ${quote(off)} run past the end of the file (${dataLen} data bytes)`);
    spans.push([a, b, name]);
  }
  for (const name of want.keys()) if (!Object.hasOwn(header, name)) bad(`state tensor ${name} is missing`);
  spans.sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) bad(`${spans[i][2]}: its bytes overlap ${spans[i - 1][2]}'s`);
  }
  const data = bytes.subarray(base);
  const out: StateTensors = {};
  const byName = [...spans].sort((x, y) => (x[2] < y[2] ? -1 : 1));
  for (const [a, b, name] of byName) {
    // a fresh copy: never `.buffer` of the input, which for a Node Buffer is its whole (shared) pool
    const f = new Float32Array((b - a) / 4);
    new Uint8Array(f.buffer).set(data.subarray(a, b));
    out[name] = f;
  }
  // the checksum covers the tensors' bytes in name order (what the writer lays out), so it also catches
  // offsets pointing at another tensor's bytes
  if (version === String(STATE_VERSION) && typeof meta.crc32 !== 'string') bad('no crc32 checksum in the metadata');
  if (meta.crc32 !== undefined) {
    const all = new Uint8Array(byName.reduce((n, [a, b]) => n + b - a, 0));
    let p = 0;
    for (const [, , name] of byName) { all.set(new Uint8Array(out[name].buffer), p); p += out[name].byteLength; }
    const sum = crc32(all);
    if (meta.crc32 !== sum) bad(`the tensor bytes are damaged (crc32 ${sum}, the file says ${quote(meta.crc32)})`);
  }
  return out;
}
