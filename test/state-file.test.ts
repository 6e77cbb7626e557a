/**
 * State files (issues 16 and 17): bytes from a Node Buffer (a view into a bigger ArrayBuffer) restore;
 * the whole file is validated before anything is returned; a seeded corruption run where every mutant is
 * refused with one UserError line or decodes to exactly the original state; and a round trip through
 * files with `rwkvc run --state-out` / `--state-in` on every target.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../kernels/config.ts';
import { UserError } from '../kernels/errors.ts';
import { crc32, decodeState, encodeState } from '../runtime/state-file.ts';
import type { StateTensors } from '../targets/backend.ts';
import { load } from '../driver/load.ts';
import { FIXTURES, maxAbsDiff } from './helpers/golden.ts';

const tmp = mkdtempSync(join(tmpdir(), 'rwkvc-state-'));
const cfg: ModelConfig = { nLayer: 2, nEmbd: 8, headSize: 4, nHead: 2, dimFfn: 28, vocabSize: 16, loraMix: 32, loraDecay: 64 };

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0; s = (s ^ (s >>> 13)) >>> 0; return s / 2 ** 32; };
}
function randomState(seed: number): StateTensors {
  const r = rng(seed);
  const s: StateTensors = {};
  for (let l = 0; l < cfg.nLayer; l++) {
    s[`state.${l}.att_shift`] = Float32Array.from({ length: 8 }, () => r() * 2 - 1);
    s[`state.${l}.wkv`] = Float32Array.from({ length: 2 * 4 * 4 }, () => r() * 10 - 5);
    s[`state.${l}.ffn_shift`] = Float32Array.from({ length: 8 }, () => r() * 2 - 1);
  }
  return s;
}
const same = (a: StateTensors, b: StateTensors) =>
  Object.keys(a).length === Object.keys(b).length &&
  Object.keys(a).every((k) => b[k] && Buffer.from(a[k].buffer, a[k].byteOffset, a[k].byteLength).equals(Buffer.from(b[k].buffer, b[k].byteOffset, b[k].byteLength)));

/** The file split into header object and data, and put back together (header padded to 8). */
function parse(bytes: Uint8Array): { header: Record<string, any>; data: Uint8Array } {
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
  return { header: JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString()), data: bytes.subarray(8 + n) };
}
function build(header: unknown, data: Uint8Array): Uint8Array {
  let json = JSON.stringify(header) ?? 'undefined';
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), data]);
}

describe('decodeState', () => {
  const state = randomState(1);
  const bytes = encodeState(state, cfg);

  it('round-trips from a Node Buffer that is a slice of a bigger ArrayBuffer (and from odd offsets)', () => {
    for (const pre of [0, 1, 3, 8, 13]) {
      const big = Buffer.alloc(pre + bytes.length + 100, 0x5a);
      big.set(bytes, pre);
      const view = big.subarray(pre, pre + bytes.length);
      expect(view.buffer.byteLength).toBeGreaterThan(bytes.length);
      expect(same(decodeState(view, cfg, 's.state'), state)).toBe(true);
    }
    // Buffer.from of a small array comes from Node's shared pool
    const pooled = Buffer.from(Array.from(bytes));
    expect(same(decodeState(pooled, cfg), state)).toBe(true);
    // the result does not alias the input
    const copy = Buffer.from(bytes);
    const out = decodeState(copy, cfg);
    copy.fill(0);
    expect(same(out, state)).toBe(true);
  });

  it('writes version 2 with a CRC-32 of the tensor bytes; reads version 1 files; names other versions', () => {
    const { header, data } = parse(bytes);
    expect(header.__metadata__.version).toBe('2');
    expect(header.__metadata__.crc32).toBe(crc32(data));
    expect(crc32(new TextEncoder().encode('123456789'))).toBe('cbf43926');
    const v1 = build({ ...header, __metadata__: { ...header.__metadata__, version: '1', crc32: undefined } }, data);
    expect(same(decodeState(v1, cfg), state)).toBe(true);
    const v3 = build({ ...header, __metadata__: { ...header.__metadata__, version: '3' } }, data);
    expect(() => decodeState(v3, cfg, 'x.state')).toThrow('x.state: state file version 3; this rwkvc reads versions 1 and 2');
    const v2nosum = build({ ...header, __metadata__: { ...header.__metadata__, crc32: undefined } }, data);
    expect(() => decodeState(v2nosum, cfg, 'x.state')).toThrow(/x\.state: no crc32 checksum/);
  });

  it('refuses each structural problem by name', () => {
    const { header, data } = parse(bytes);
    const e = (h: unknown, d = data) => { try { decodeState(build(h, d), cfg, 'f'); return 'accepted'; } catch (x) { expect(x).toBeInstanceOf(UserError); return (x as Error).message; } };
    const { ['state.1.wkv']: wkv, ...missing } = header;
    expect(e(null)).toMatch(/not a JSON object/);
    expect(e([1])).toMatch(/not a JSON object/);
    expect(e({ ...header, __metadata__: null })).toMatch(/no __metadata__/);
    expect(e(missing)).toMatch(/state\.1\.wkv is missing/);
    expect(e({ ...missing, 'state.1.wkx': wkv })).toMatch(/unknown tensor 'state\.1\.wkx'/);
    expect(e({ ...header, 'state.0.wkv': { ...header['state.0.wkv'], data_offsets: undefined } })).toMatch(/state\.0\.wkv: bad data_offsets/);
    expect(e({ ...header, 'state.0.wkv': { ...header['state.0.wkv'], shape: undefined } })).toMatch(/state\.0\.wkv: bad shape/);
    expect(e({ ...header, 'state.0.wkv': { ...header['state.0.wkv'], shape: [4] } })).toMatch(/has 4 values, this model's state has 32/);
    const [a, b] = header['state.0.att_shift'].data_offsets;
    expect(e({ ...header, 'state.0.att_shift': { ...header['state.0.att_shift'], data_offsets: [a - 4, b - 4] } })).toMatch(/bad data_offsets|overlap/);
    expect(e({ ...header, 'state.0.att_shift': { ...header['state.0.att_shift'], data_offsets: [a + 2, b + 2] } })).toMatch(/not 4-byte aligned/);
    expect(e({ ...header, 'state.1.wkv': { ...header['state.1.wkv'], data_offsets: [0, 128] } })).toMatch(/overlap/);
    expect(e(header, data.subarray(0, data.length - 4))).toMatch(/past the end/);
    // offsets swapped between two tensors of the same size: in bounds, no overlap, but the checksum is by name
    const att = header['state.0.att_shift'], ffn = header['state.0.ffn_shift'];
    expect(e({ ...header, 'state.0.att_shift': ffn, 'state.0.ffn_shift': att })).toMatch(/crc32/);
    const flipped = Uint8Array.from(data);
    flipped[5] ^= 4;
    expect(e(header, flipped)).toMatch(/damaged \(crc32/);
  });

  it('60 seeded corruptions: each refused with one UserError line, or decodes to exactly the original state', () => {
    const r = rng(17);
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
    const { header, data } = parse(bytes);
    const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const values: unknown[] = [null, -1, 0, 1.5, 2 ** 53, '0', 'F32', [], [0], [-4, 0], [3, 7], [0, 2 ** 40], {}, true, 'x'.repeat(300)];
    const mutations: ((b: Uint8Array) => Uint8Array)[] = [
      (b) => { const c = Uint8Array.from(b); c[Math.floor(r() * c.length)] ^= 1 << Math.floor(r() * 8); return c; },
      (b) => { const c = Uint8Array.from(b); c[8 + Math.floor(r() * n)] ^= 1 << Math.floor(r() * 8); return c; },
      (b) => { const c = Uint8Array.from(b); c[Math.floor(r() * 8)] ^= 1 << Math.floor(r() * 8); return c; },
      (b) => b.subarray(0, Math.floor(r() * b.length)),
      () => { const h = structuredClone(header); h[pick(names)][pick(['dtype', 'shape', 'data_offsets'])] = pick(values); return build(h, data); },
      () => { const h = structuredClone(header); delete h[pick(names)][pick(['dtype', 'shape', 'data_offsets'])]; return build(h, data); },
      () => { const h = structuredClone(header); h.__metadata__[pick(['format', 'version', 'config', 'crc32'])] = pick(values); return build(h, data); },
      () => { const h = structuredClone(header); h[pick(names)] = pick(values); return build(h, data); },
      () => { const h = structuredClone(header); const k = pick(names); h[k + pick(['x', ' ', '\n'])] = h[k]; delete h[k]; return build(h, data); },
      () => build(pick(values), data),
    ];
    let refused = 0, valid = 0;
    for (let i = 0; i < 60; i++) {
      const m = mutations[i % mutations.length](bytes);
      let out: StateTensors | undefined;
      try {
        out = decodeState(m, cfg, `case${i}.state`);
      } catch (e) {
        expect(e, `case ${i}: ${String(e)}`).toBeInstanceOf(UserError);
        const msg = (e as Error).message;
        expect(msg.startsWith(`case${i}.state: `), msg).toBe(true);
        expect(msg).not.toMatch(/\n/);
        expect(msg.length).toBeLessThan(300);
        refused++;
        continue;
      }
      expect(same(out, state), `case ${i} accepted with a different state`).toBe(true);
      valid++;
    }
    expect(refused + valid).toBe(60);
    expect(refused).toBeGreaterThan(50);
  });
});

describe('Session.state.fromBytes is all or nothing on every CPU target', () => {
  const model = join(FIXTURES, 'finch-tiny', 'model.safetensors');
  it.each(['ref', 'plan', 'wasm'] as const)('%s: 60 corrupted files are refused and leave the state as it was', async (target) => {
    const s = await load(model, { target, threads: 1 });
    await s.prefill([5, 6, 7]);
    const before = (await s.state.save()).tensors;
    const good = await s.state.toBytes();
    const r = rng(99);
    let refused = 0;
    for (let i = 0; i < 60; i++) {
      const c = Uint8Array.from(good);
      if (i % 3 === 2) c.subarray(0, 8 + Number(Buffer.from(good).readBigUInt64LE(0)))[Math.floor(r() * 200) + 8] ^= 1 << Math.floor(r() * 8);
      else c[Math.floor(r() * c.length)] ^= 1 << Math.floor(r() * 8);
      try {
        await s.state.fromBytes(Buffer.from(c), 'bad.state');
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        refused++;
      }
      expect(same((await s.state.save()).tensors, before), `case ${i} changed the state`).toBe(true);
    }
    expect(refused).toBe(60);
    // and a good file from a Buffer still restores, and prefill works after all that
    await s.state.fromBytes(Buffer.from(good), 'good.state');
    expect(same((await s.state.save()).tensors, before)).toBe(true);
    expect((await s.prefill([8])).length).toBe(256);
    s.model.dispose();
  }, 60_000);
});

describe('rwkvc run --state-out / --state-in round trip through files, every target', () => {
  const model = join(FIXTURES, 'finch-tiny', 'model.safetensors');
  // a byte vocabulary: byte b is token b + 1, so text prompts are token ids (the fixture has 256 rows)
  const vocab = join(tmp, 'bytes-vocab.txt');
  writeFileSync(vocab, Array.from({ length: 256 }, (_, b) => `${b + 1} ${b < 128 ? '' : 'b'}'\\x${b.toString(16).padStart(2, '0')}' 1`).join('\n') + '\n');
  const run = (target: string, prompt: string, extra: string[]) =>
    spawnSync('node', ['bin/rwkvc.js', 'run', '--model', model, '--vocab', vocab, '--prompt', prompt, '--target', target,
      '--temperature', '0', '--max-tokens', '1', '--threads', '1', ...extra],
    { encoding: 'utf8', env: { ...process.env, VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? '/usr/lib/chromium/vk_swiftshader_icd.json' } });

  /** The reference, in process on the plan target: "ab" + greedy token, then "c" + greedy token. */
  const reference = (async () => {
    const s = await load(model, { target: 'plan', vocab });
    const argmax = (l: Float32Array) => l.reduce((best, v, i) => (v > l[best] ? i : best), 0);
    await s.decode(argmax(await s.prefill([98, 99])));
    const first = (await s.state.save()).tensors;
    await s.decode(argmax(await s.prefill([100])));
    const second = (await s.state.save()).tensors;
    // and the in-process path of issue 16: restoring from readFileSync bytes
    const back = await load(model, { target: 'plan', vocab });
    writeFileSync(join(tmp, 'ref.state'), await s.state.toBytes());
    await back.state.fromBytes(readFileSync(join(tmp, 'ref.state')), 'ref.state');
    const restored = (await back.state.save()).tensors;
    s.model.dispose();
    back.model.dispose();
    return { first, second, restored, config: s.config };
  })();
  const close = (got: StateTensors, want: StateTensors) => {
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    for (const k of Object.keys(want)) {
      const scale = Math.max(1, ...Array.from(want[k], Math.abs));
      expect(maxAbsDiff(got[k], want[k]) / scale, k).toBeLessThan(2e-3);
    }
  };

  it.each(['ref', 'plan', 'wasm', 'wgsl'])('%s', async (target) => {
    const { first, second, restored, config } = await reference;
    close(restored, second);
    const s1 = join(tmp, `${target}-1.state`), s2 = join(tmp, `${target}-2.state`);
    // wgsl (SwiftShader here: about a minute of shader compilation per process) makes one run, from a
    // state file written by the plan reference; the others make both runs
    if (target === 'wgsl') writeFileSync(s1, encodeState(first, config));
    else {
      const a = run(target, 'ab', ['--state-out', s1]);
      expect(a.status, a.stderr).toBe(0);
    }
    const b = run(target, 'c', ['--state-in', s1, '--state-out', s2]);
    if (target === 'wgsl' && b.status !== 0 && /adapter|webgpu|GPU/i.test(b.stderr)) {
      console.warn(`wgsl: skipped (${b.stderr.trim()})`);
      return;
    }
    expect(b.status, b.stderr).toBe(0);
    close(decodeState(readFileSync(s1), config, s1), first);
    close(decodeState(readFileSync(s2), config, s2), second);
  }, 120_000);
});
