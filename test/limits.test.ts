/**
 * Limits named before they bite (issue 14): sizes per target and format from the targets' own layout code,
 * the one-line refusal of a model that cannot fit (a sparse 7B-shaped checkpoint: 14 GiB of holes, no disk),
 * WebGPU's binding limit met by splitting every large matrix, and 7B/14B plans compiling quickly.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../kernels/errors.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { expectedTensors } from '../runtime/checkpoint/index.ts';
import { PRESETS } from '../runtime/presets.ts';
import { compileGraph } from '../compiler/index.ts';
import { load } from '../driver/load.ts';
import { buildGraph, DEFAULT_DSL } from '../driver/dsl.ts';
import { ALL_FORMATS, checkFits, footprint, WASM32_MAX_BYTES } from '../driver/limits.ts';
import { DEFAULT_LIMITS, lowerPlan } from '../targets/gpu/lower.ts';
import { matrixBytes } from '../targets/gpu/formats.ts';

const ROOT = path.join(import.meta.dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rwkvc-limits-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A safetensors file of `preset`'s shapes in bf16 whose data is a hole (ftruncate): every header check passes. */
function sparseCheckpoint(preset: string): string {
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const [name, shape] of expectedTensors(PRESETS[preset]!)) {
    const n = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [at, at + n] };
    at += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const file = path.join(tmp, `${preset}.safetensors`);
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json)]));
  fs.truncateSync(file, 8 + Buffer.byteLength(json) + at);
  return file;
}

const graphs = new Map<string, Awaited<ReturnType<typeof buildGraph>>>();
async function plan(preset: string, weights: WeightDType): Promise<KernelPlan> {
  if (!graphs.has(preset)) graphs.set(preset, await buildGraph(DEFAULT_DSL, PRESETS[preset]!));
  return compileGraph(graphs.get(preset)!, PRESETS[preset]!, { weights, logits: 'last' }).plan;
}

/** One line, ending in the alternatives: formats that fit, or none (then a GPU target). */
const ONE_LINE = /^finch \(32 layers × 4096\) in (\w+) on wasm: needs [\d.]+ GiB of linear memory \(weights [\d.]+ GiB, 2 threads\); wasm32 allows 4 GiB; (formats that fit: --weights \w+ \([\d.]+ GiB\)(, --weights \w+ \([\d.]+ GiB\))*|no weight format fits: a GPU target \(--target wgsl or cuda\))$/;

describe('a 7B that cannot fit wasm32', () => {
  it('load refuses it in one line before allocating (the need, the limit, what fits)', async () => {
    const file = sparseCheckpoint('finch-7b');
    const t0 = performance.now();
    const err = await load(file, { target: 'wasm', weights: 'bf16', threads: 2 }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(ONE_LINE);
    expect(performance.now() - t0).toBeLessThan(60_000); // compiling the plans, never packing 14 GB
  }, 120_000);

  it('the CLI says it as one rwkvc: line, exit 2', () => {
    const file = sparseCheckpoint('finch-7b');
    const r = spawnSync(process.execPath, ['bin/rwkvc.js', 'logits', '--model', file, '--tokens', '1', '--target', 'wasm', '--weights', 'int8', '--threads', '2', '--out', path.join(tmp, 'logits.safetensors')], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.replace(/^rwkvc: /, '')).toMatch(ONE_LINE);
  }, 120_000);
});

describe('sizes per target and format', () => {
  it('finch-3b: int8 fits wasm32, bf16 does not; q4 formats are smaller still; sizes grow with threads', async () => {
    const fp = async (f: WeightDType, threads = 2) => footprint('wasm', await plan('finch-3b', f), { threads });
    const [bf16, int8] = [await fp('bf16'), await fp('int8')];
    expect(bf16.fits).toBe(false);
    expect(bf16.why).toMatch(/wasm32 allows 4 GiB/);
    expect(int8.fits).toBe(true);
    expect(int8.totalBytes).toBeLessThan(WASM32_MAX_BYTES);
    expect(int8.totalBytes).toBe(int8.weightBytes + int8.stateBytes + int8.arenaBytes);
    // state: per layer two shifts [C] and the wkv state [H, N, N], f32
    const c = PRESETS['finch-3b']!;
    expect(int8.stateBytes).toBeGreaterThanOrEqual(c.nLayer * (2 * c.nEmbd + c.nHead * c.headSize ** 2) * 4);
    expect((await fp('int8', 8)).arenaBytes).toBeGreaterThan(int8.arenaBytes);
    for (const f of ['q4_0', 'q4_1'] as WeightDType[]) {
      const q = await fp(f);
      if (Number.isFinite(q.weightBytes)) expect(q.weightBytes).toBeLessThan(int8.weightBytes);
    }
  }, 120_000);

  it('checkFits names the formats that fit', async () => {
    const plans = new Map<WeightDType, KernelPlan>();
    for (const f of ALL_FORMATS) plans.set(f, await plan('finch-3b', f));
    let msg = '';
    try { await checkFits('wasm', plans.get('bf16')!, { threads: 2 }, { formats: ALL_FORMATS, plan: (f) => plans.get(f)! }); } catch (e) { msg = (e as Error).message; }
    expect(msg).toMatch(/^finch \(32 layers × 2560\) in bf16 on wasm: needs [\d.]+ GiB of linear memory .*; wasm32 allows 4 GiB; formats that fit: .*--weights int8 \([\d.]+ GiB\)/);
    expect(msg).not.toContain('\n');
    await expect(checkFits('wasm', plans.get('int8')!, { threads: 2 }, { formats: ALL_FORMATS, plan: (f) => plans.get(f)! })).resolves.toBeDefined();
  }, 120_000);

  it('a known device memory bounds the GPU targets', async () => {
    const p = await plan('finch-7b', 'int8');
    const free = await footprint('wgsl', p);
    expect(free.fits).toBe(true);
    const small = await footprint('cuda', p, { deviceMemory: 4 * 2 ** 30 });
    expect(small.fits).toBe(false);
    expect(small.why).toMatch(/needs [\d.]+ GiB of CUDA device memory .* the device has 4.00 GiB/);
  }, 120_000);
});

describe('WebGPU: every matrix over one binding is split', () => {
  it('finch-7b int8 under the default limits: each head and projection piece fits a binding, rows cover the matrix once', async () => {
    const p = await plan('finch-7b', 'int8');
    const max = Math.min(DEFAULT_LIMITS.maxStorageBufferBindingSize, DEFAULT_LIMITS.maxBufferSize);
    const rows = new Map<string, number>();
    let split = 0;
    for (const s of lowerPlan(p, p.decode, DEFAULT_LIMITS).steps) {
      if (s.kind !== 'dispatch') continue;
      for (const w of s.weights) {
        if (w.kind !== 'rows') continue;
        expect(matrixBytes(w.fmt, w.rows, w.cols)).toBeLessThanOrEqual(max);
        if (w.row0 > 0) split++;
        rows.set(w.weight, (rows.get(w.weight) ?? 0) + w.rows);
      }
    }
    expect(split).toBeGreaterThan(0); // head: 65536 × 4096 int8 is 272 MiB
    for (const d of p.weights) if (rows.has(d.name)) expect(rows.get(d.name), d.name).toBe(d.shape[0]);
  }, 120_000);
});

describe('WebGPU: the largest buffer is mem or one state part', () => {
  it('finch-1b6 under a 12 MiB binding: the state in several parts; maxBufferSize needs the biggest buffer, not mem + state', async () => {
    const p = await plan('finch-1b6', 'int8');
    const binding = 12 * 2 ** 20;
    const lim = { ...DEFAULT_LIMITS, maxStorageBufferBindingSize: binding };
    let biggest = 0, together = 0, mem = 0;
    for (const prog of [p.decode, p.prefill]) {
      const { layout, steps } = lowerPlan(p, prog, lim);
      expect(layout.parts.length).toBeGreaterThan(1);
      together = Math.max(together, layout.elems * 4);
      mem = Math.max(mem, layout.memElems * 4);
      biggest = Math.max(biggest, layout.memElems * 4, ...layout.parts.map((s) => s.elems * 4));
      for (const s of steps) if (s.kind === 'dispatch') for (const w of s.weights) if (w.kind === 'rows') biggest = Math.max(biggest, matrixBytes(w.fmt, w.rows, w.cols));
    }
    expect(biggest).toBeLessThan(together); // counting mem and the state as one buffer would refuse this
    expect((await footprint('wgsl', p, { gpuLimits: { maxStorageBufferBindingSize: binding, maxBufferSize: biggest } })).fits).toBe(true);
    // mem cannot be split: a maxBufferSize under it is refused
    expect((await footprint('wgsl', p, { gpuLimits: { maxStorageBufferBindingSize: binding, maxBufferSize: mem - 4 } })).fits).toBe(false);
  }, 120_000);
});

describe('7B and 14B plans compile quickly', () => {
  for (const preset of ['finch-7b', 'finch-14b']) {
    it(`${preset}: graph + compile in under 3 s of CPU (a warm run; 0.9–1.9 s measured on this shared machine)`, async () => {
      await plan(preset, 'int8'); // warm: the DSL module and the compiler's code
      const c0 = process.cpuUsage();
      const g = await buildGraph(DEFAULT_DSL, PRESETS[preset]!);
      const p = compileGraph(g, PRESETS[preset]!, { weights: 'q4_0', logits: 'last' }).plan;
      const c = process.cpuUsage(c0);
      expect(p.config.nLayer).toBe(PRESETS[preset]!.nLayer);
      expect((c.user + c.system) / 1e6).toBeLessThan(3);
    }, 120_000);
  }
});
