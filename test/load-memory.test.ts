/**
 * Bounded-memory loading (issue 14): large matrices are converted a slice of rows at a time, straight from
 * the file, so a load holds one slice beside the target's storage. Checked here: row reads equal whole reads
 * (safetensors and .pth, whose storage CRC-32 is still checked); a WASM load packed in tiny slices runs the
 * same logits as one packed whole, in every format; the GPU encoder's row path gives the same bytes; and, in a
 * child process, the resident-memory peak of loading a model whose head is 128 MiB as f32 stays within the
 * packed bytes + 96 MiB, where converting it whole would take ≥ 192 MiB more.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../kernels/errors.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { openCheckpoint } from '../runtime/checkpoint/index.ts';
import { openModel } from '../runtime/model.ts';
import { compileGraph } from '../compiler/index.ts';
import { weightProvider } from '../driver/load.ts';
import { buildGraph, DEFAULT_DSL } from '../driver/dsl.ts';
import { loadPlan } from '../driver/targets.ts';
import { ALL_FORMATS, footprint } from '../driver/limits.ts';
import { WeightEncoder } from '../targets/gpu/encode.ts';
import type { WeightProvider } from '../targets/backend.ts';

const FIX = path.join(import.meta.dirname, 'fixtures', 'finch-tiny');
const ROOT = path.join(import.meta.dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rwkvc-loadmem-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('row reads', () => {
  for (const file of ['model.safetensors', 'model.pth']) {
    it(`${file}: rows of every tensor equal the whole tensor's`, () => {
      const c = openCheckpoint(path.join(FIX, file));
      try {
        for (const name of c.names()) {
          const whole = c.readF32(name), shape = c.info(name).shape;
          const cols = shape[shape.length - 1] ?? 1, rows = whole.length / cols;
          const r0 = Math.floor(rows / 3), n = Math.max(0, Math.min(rows - r0, Math.ceil(rows / 2)));
          expect(c.readRowsF32(name, r0, n)).toEqual(whole.subarray(r0 * cols, (r0 + n) * cols));
        }
        expect(() => c.readRowsF32('emb.weight', 0, 1e9)).toThrow(UserError);
      } finally { c.close(); }
    });
  }

  it('.pth: a flipped bit in a storage is refused by the row path too (CRC-32 checked streaming)', () => {
    const src = fs.readFileSync(path.join(FIX, 'model.pth'));
    const c0 = openCheckpoint(path.join(FIX, 'model.pth'));
    const t = (c0 as unknown as { tensors: Map<string, { offset: number; nbytes: number }> }).tensors.get('head.weight')!;
    c0.close();
    const bad = Buffer.from(src);
    bad[t.offset + 5] ^= 0x10;
    const p = path.join(tmp, 'flipped.pth');
    fs.writeFileSync(p, bad);
    const c = openCheckpoint(p);
    try {
      expect(() => c.readRowsF32('head.weight', 0, 1)).toThrow(/CRC-32/);
    } finally { c.close(); }
  });
});

const plans = new Map<WeightDType, KernelPlan>();
let graph: Awaited<ReturnType<typeof buildGraph>> | undefined;
async function tinyPlan(weights: WeightDType): Promise<{ plan: KernelPlan; model: ReturnType<typeof openModel> }> {
  const model = openModel(path.join(FIX, 'model.safetensors'));
  graph ??= await buildGraph(DEFAULT_DSL, model.config);
  if (!plans.has(weights)) plans.set(weights, compileGraph(graph, model.config, { weights, logits: 'all' }).plan);
  return { plan: plans.get(weights)!, model };
}

/** The formats the WASM target can store (footprint sizes each through the target's own layout code). */
const wasmFormats = async () => {
  const out: WeightDType[] = [];
  for (const f of ALL_FORMATS) if ((await footprint('wasm', (await tinyPlan(f)).plan, { threads: 1 })).fits) out.push(f);
  return out;
};

describe('WASM: packed in slices of rows = packed whole', () => {
  it('every format the target stores: identical logits over 4 tokens', async () => {
    const formats = await wasmFormats();
    expect(formats).toEqual(expect.arrayContaining(['f32', 'bf16', 'f16', 'int8']));
    for (const f of formats) {
      const { plan, model } = await tinyPlan(f);
      const rows = weightProvider(plan, model);
      const whole: WeightProvider = (d) => rows(d); // no `rows`: every weight whole
      // 40 values a slice: every matrix of the fixture is packed in many slices (a 16-row panel at least)
      const sliced = await loadPlan('wasm', plan, rows, { threads: 1, chunkValues: 40 } as never);
      const ref = await loadPlan('wasm', plan, whole, { threads: 1 });
      const tokens = Int32Array.from([3, 17, 200, 5]);
      try {
        expect(await sliced.run('prefill', tokens), f).toEqual(await ref.run('prefill', tokens));
        expect(await sliced.readState()).toEqual(await ref.readState());
      } finally { sliced.dispose(); ref.dispose(); model.close(); }
    }
  });
});

describe('GPU encoder: row path = whole path', () => {
  it('the same bytes for every weight buffer, each matrix in three pieces of rows', async () => {
    for (const f of ['bf16', 'int8', 'q4_1'] as WeightDType[]) {
      const { plan, model } = await tinyPlan(f);
      const rows = weightProvider(plan, model);
      const whole: WeightProvider = (d) => rows(d);
      const a = new WeightEncoder(plan, rows), b = new WeightEncoder(plan, whole);
      let n = 0;
      for (const d of plan.weights) {
        if (d.shape.length !== 2 || d.dtype === 'f32') continue;
        const [O, I] = d.shape as [number, number];
        const cut = [0, Math.floor(O / 3), Math.floor((2 * O) / 3), O];
        for (let i = 0; i < 3; i++) {
          const ref = { kind: 'rows' as const, weight: d.name, fmt: d.dtype, row0: cut[i]!, rows: cut[i + 1]! - cut[i]!, cols: I };
          let x: Uint8Array;
          try { x = b.encode(ref); } catch { continue; } // a format the GPU encoder does not store yet
          expect(a.encode(ref), `${f} ${d.name} piece ${i}`).toEqual(x);
          n++;
        }
      }
      if (f !== 'q4_1') expect(n, f).toBeGreaterThan(0);
      model.close();
    }
  });
});

describe('peak memory of a load (child process)', () => {
  it('a model with a 128 MiB (f32) head loads onto wasm bf16 within packed bytes + 96 MiB', () => {
    const ckpt = path.join(tmp, 'wide-vocab.safetensors');
    const gen = spawnSync(process.execPath, ['bin/rwkvc.js', 'random-model', '--layers', '1', '--embd', '512', '--vocab', '65536', '-o', ckpt], { cwd: ROOT, encoding: 'utf8' });
    expect(gen.status, gen.stderr).toBe(0);
    const r = spawnSync(process.execPath, ['bin/rwkvc.js', 'inspect', ckpt, '--measure-load', '--target', 'wasm', '--weights', 'bf16', '--threads', '1', '--json'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout) as { baselineBytes: number; peakBytes: number; packedBytes: number };
    // head 65536×512: 128 MiB as f32 (+64 MiB bf16 as read): a whole-matrix conversion would exceed this bound
    expect(m.packedBytes).toBeGreaterThan(120 << 20);
    console.log(`wide-vocab bf16 load: peak − baseline ${((m.peakBytes - m.baselineBytes) / 2 ** 20).toFixed(1)} MiB for ${(m.packedBytes / 2 ** 20).toFixed(1)} MiB packed`);
    // Slack for the collector's timing (measured +0 to +41 MiB over packed here, on a busy machine); converting the head whole
    // would add ≥ 192 MiB (its f32 values and the bf16 read) beyond packed. The 15 % goal itself is measured at real size (rwkvc inspect --measure-load).
    expect(m.peakBytes - m.baselineBytes).toBeLessThan(m.packedBytes + (96 << 20));
  }, 120_000);
});
