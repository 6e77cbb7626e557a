/**
 * State files: the recurrent state of a session, saved so a conversation can resume later. The bytes
 * are a safetensors file (readable by any tool) whose metadata names the format, its version and a
 * hash of the model config; a state from another model is refused instead of silently mixed in.
 */
import type { ModelConfig } from '../kernels/config.ts';
import type { StateTensors } from '../targets/backend.ts';
import { UserError } from '../kernels/errors.ts';

const STATE_FORMAT = 'rwkvc-state';
const STATE_VERSION = 1;

/** FNV-1a over the config's canonical JSON: stable across machines, no crypto module needed in browsers. */
function configHash(cfg: ModelConfig): string {
  const keys = Object.keys(cfg).sort() as (keyof ModelConfig)[];
  const text = JSON.stringify(keys.map((k) => [k, cfg[k]]));
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

export function encodeState(state: StateTensors, cfg: ModelConfig): Uint8Array {
  const names = Object.keys(state).sort();
  const header: Record<string, unknown> = {
    __metadata__: { format: STATE_FORMAT, version: String(STATE_VERSION), config: configHash(cfg) },
  };
  let off = 0;
  for (const n of names) {
    const len = state[n].length * 4;
    header[n] = { dtype: 'F32', shape: [state[n].length], data_offsets: [off, off + len] };
    off += len;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const n of names) {
    out.set(new Uint8Array(state[n].buffer, state[n].byteOffset, state[n].byteLength), p);
    p += state[n].byteLength;
  }
  return out;
}

export function decodeState(bytes: Uint8Array, cfg: ModelConfig, source = 'state'): StateTensors {
  const bad = (why: string): never => { throw new UserError(`${source}: ${why}`); };
  if (bytes.length < 8) bad('not a state file (too short)');
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (n > bytes.length - 8) bad('not a state file (header length past the end)');
  type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch {
    return bad('not a state file (header is not JSON)');
  }
  const meta = (header.__metadata__ ?? {}) as Record<string, string>;
  if (meta.format !== STATE_FORMAT) bad(`not an rwkvc state file (format '${meta.format}')`);
  if (meta.version !== String(STATE_VERSION)) bad(`state file version ${meta.version}; this rwkvc reads version ${STATE_VERSION}`);
  if (meta.config !== configHash(cfg)) bad(`the state belongs to another model (config hash ${meta.config}, this model ${configHash(cfg)})`);
  const base = 8 + n;
  const out: StateTensors = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const t = entry as Entry;
    const [a, b] = t.data_offsets;
    if (t.dtype !== 'F32' || b - a !== t.shape[0] * 4 || base + b > bytes.length) bad(`${name}: damaged tensor entry`);
    out[name] = new Float32Array(bytes.slice(base + a, base + b).buffer);
  }
  return out;
}
