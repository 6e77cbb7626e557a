/**
 * 4-bit weights (issue 14): ggml's Q4_0 / Q4_1 blocks bit for bit, their accuracy on the fixtures within
 * the README's bounds, and llama.cpp on the same GGUF blocks agreeing with us.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dequantize, f16ToF32, q4Bytes, toInt8, toQ4, type Q4Format } from '../kernels/dtype.ts';
import { openModel } from '../runtime/model.ts';
import { seededRandom } from '../runtime/random-model.ts';
import { compare, llamaLogits, maxAbs, ourLogits, seededTokens } from '../bench/accuracy.ts';

const FIX = join(import.meta.dirname, 'fixtures');
const dir = mkdtempSync(join(tmpdir(), 'rwkvc-q4-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * ggml's quantize_row_q4_0_ref / quantize_row_q4_1_ref (ggml-quants.c) transcribed, with ggml's x86
 * f32 → f16 conversion (F16C, round to nearest even), built as ggml is (-std=c11: no contraction).
 */
const GGML_C = String.raw`
#include <immintrin.h>
#include <math.h>
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#define QK 32
#define MIN(a, b) ((a) < (b) ? (a) : (b))
static uint16_t h(float f) { return _cvtss_sh(f, 0); }
static void q4_0(const float* x, uint8_t* y, int nb) {
  for (int i = 0; i < nb; i++, y += 18) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) { const float v = x[i*QK + j]; if (amax < fabsf(v)) { amax = fabsf(v); max = v; } }
    const float d = max / -8;
    const float id = d ? 1.0f/d : 0.0f;
    const uint16_t dh = h(d); y[0] = dh & 255; y[1] = dh >> 8;
    for (int j = 0; j < QK/2; ++j) {
      const float x0 = x[i*QK + 0 + j]*id;
      const float x1 = x[i*QK + QK/2 + j]*id;
      const uint8_t xi0 = MIN(15, (int8_t)(x0 + 8.5f));
      const uint8_t xi1 = MIN(15, (int8_t)(x1 + 8.5f));
      y[2 + j] = xi0 | (xi1 << 4);
    }
  }
}
static void q4_1(const float* x, uint8_t* y, int nb) {
  for (int i = 0; i < nb; i++, y += 20) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK; j++) { const float v = x[i*QK + j]; if (v < min) min = v; if (v > max) max = v; }
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d ? 1.0f/d : 0.0f;
    const uint16_t dh = h(d), mh = h(min); y[0] = dh & 255; y[1] = dh >> 8; y[2] = mh & 255; y[3] = mh >> 8;
    for (int j = 0; j < QK/2; ++j) {
      const float x0 = (x[i*QK + 0 + j] - min)*id;
      const float x1 = (x[i*QK + QK/2 + j] - min)*id;
      const uint8_t xi0 = MIN(15, (int8_t)(x0 + 0.5f));
      const uint8_t xi1 = MIN(15, (int8_t)(x1 + 0.5f));
      y[4 + j] = xi0 | (xi1 << 4);
    }
  }
}
int main(int argc, char** argv) {
  FILE* f = fopen(argv[1], "rb"); fseek(f, 0, SEEK_END); long n = ftell(f) / 4; fseek(f, 0, SEEK_SET);
  float* x = malloc(n * 4); if (fread(x, 4, n, f) != (size_t)n) return 1; fclose(f);
  uint8_t* y = malloc(n); int nb = n / QK;
  q4_0(x, y, nb); f = fopen(argv[2], "wb"); fwrite(y, 18, nb, f); fclose(f);
  q4_1(x, y, nb); f = fopen(argv[3], "wb"); fwrite(y, 20, nb, f); fclose(f);
  return 0;
}`;

/** Our blocks in ggml's byte layout (as the GGUF writer stores them). */
function ours(x: Float32Array, fmt: Q4Format): Uint8Array {
  const q = toQ4(x, 32, fmt), head = fmt === 'q4_0' ? 2 : 4, size = head + 16;
  const out = new Uint8Array(q.d.length * size);
  for (let b = 0; b < q.d.length; b++) {
    out[b * size] = q.dBits[b] & 255; out[b * size + 1] = q.dBits[b] >> 8;
    if (fmt === 'q4_1') { out[b * size + 2] = q.mBits[b] & 255; out[b * size + 3] = q.mBits[b] >> 8; }
    q4Bytes(q.q, b, out, b * size + head);
  }
  return out;
}

const haveCc = spawnSync('cc', ['--version']).status === 0;
if (!haveCc) console.log('skipping the bit-for-bit check against ggml\'s quantizers: no C compiler (cc)');

describe('the quantizers', () => {
  it.skipIf(!haveCc)('give ggml\'s Q4_0 and Q4_1 bytes bit for bit (ggml-quants.c reference quantizers, compiled here)', () => {
    // blocks of every kind: uniform and heavy-tailed at many scales, ties (x·id + 8.5 landing on whole
    // numbers), all zero, constant, a negative extreme, f16-subnormal scales, one large outlier
    const rnd = seededRandom(14), blocks: number[][] = [];
    for (let b = 0; b < 3000; b++) {
      const s = 10 ** (-8 + 10 * rnd()), kind = b % 6; // |w| ≤ 4e4: q4_1's f16 minimum holds it
      blocks.push(Array.from({ length: 32 }, (_, j) => {
        const u = 2 * rnd() - 1;
        if (kind === 1) return s * Math.tan(1.4 * u); // heavy tails
        if (kind === 2) return s * Math.round(16 * u) / 8; // ties
        if (kind === 3) return j === 5 ? -s * 40 : s * u; // a negative extreme
        return s * u;
      }));
    }
    blocks.push(new Array(32).fill(0), new Array(32).fill(0.37), new Array(32).fill(-3), Array.from({ length: 32 }, (_, j) => (j - 16) / 8));
    const x = Float32Array.from(blocks.flat());
    const src = join(dir, 'q4.c'), bin = join(dir, 'q4'), xin = join(dir, 'x.f32');
    writeFileSync(src, GGML_C);
    execFileSync('cc', ['-std=c11', '-O2', '-mf16c', src, '-o', bin, '-lm']);
    writeFileSync(xin, new Uint8Array(x.buffer));
    execFileSync(bin, [xin, join(dir, 'q4_0'), join(dir, 'q4_1')]);
    for (const fmt of ['q4_0', 'q4_1'] as const) {
      const want = new Uint8Array(readFileSync(join(dir, fmt))), got = ours(x, fmt);
      const first = got.findIndex((v, i) => v !== want[i]);
      expect(first, `${fmt}: first differing byte`).toBe(-1);
      expect(got.length).toBe(want.length);
    }
  });

  it('dequantize to (q − 8)·d and q·d + m, each weight within half a step of the original (q4_0: a step on the side it clips)', () => {
    const rnd = seededRandom(3), x = Float32Array.from({ length: 64 * 32 }, () => (2 * rnd() - 1) * 0.1);
    for (const fmt of ['q4_0', 'q4_1'] as const) {
      const q = toQ4(x, 64, fmt), v = dequantize(x, 64, fmt);
      for (let i = 0; i < x.length; i++) {
        const b = i >> 5, d = q.d[b];
        expect(v[i]).toBe(fmt === 'q4_0' ? (q.q[i] - 8) * d : Math.fround(q.q[i] * d + q.m[b]));
        // half a step, plus the f16 rounding of d (≤ 2^-11 of it per step, times at most 8 / 15 steps) and of m;
        // q4_0 maps the block's signed extreme to q = 0 (−8·d) and clips the other side at q = 15 (+7·d): a whole step there
        const slack = fmt === 'q4_0' ? 8 * Math.abs(d) * 2 ** -11 : 15 * d * 2 ** -11 + Math.abs(q.m[b]) * 2 ** -11;
        const step = fmt === 'q4_0' && q.q[i] === 15 ? Math.abs(d) : Math.abs(d) / 2;
        expect(Math.abs(v[i] - x[i])).toBeLessThanOrEqual(step + slack + 1e-12);
      }
    }
    expect(f16ToF32(toQ4(Float32Array.from({ length: 32 }, (_, j) => j - 20), 32, 'q4_0').dBits[0])).toBe(20 / 8); // d = max_signed / −8
  });

  it('q4_1 (a per-block minimum) rounds the fixtures\' matrices closer than q4_0, int8 far closer than both', () => {
    const m = openModel(join(FIX, 'finch-tiny', 'model.safetensors'));
    const err: Record<string, number> = { int8: 0, q4_0: 0, q4_1: 0 };
    let ss = 0;
    for (const name of ['blocks.0.att.key.weight', 'blocks.0.att.receptance.weight', 'blocks.1.ffn.key.weight', 'blocks.1.att.output.weight', 'head.weight']) {
      const w = m.read(name);
      for (const x of w) ss += x * x;
      for (const f of ['int8', 'q4_0', 'q4_1'] as const) {
        const v = dequantize(w, m.config.nEmbd, f);
        for (let i = 0; i < w.length; i++) err[f] += (v[i] - w[i]) ** 2;
      }
    }
    m.close();
    const rel = (f: string) => Math.sqrt(err[f] / ss);
    // measured: int8 0.54%, q4_0 8.6%, q4_1 7.8% relative RMS error
    expect(rel('q4_1')).toBeLessThan(0.95 * rel('q4_0'));
    expect(rel('int8')).toBeLessThan(rel('q4_1') / 10);
    expect(toInt8(new Float32Array(32), 32).q.every((v) => v === 0)).toBe(true);
  });
});

/**
 * The README's Accuracy bounds on the fixtures, against the f32 run (WASM, 1 thread, 128 seeded token
 * ids from the zero state). A weight's rounding step is max|w|/127 of its block in int8 and max|w|/8
 * (q4_0) or (max − min)/15 ≤ max|w|/7.5 (q4_1) in 4 bits: 16× int8's, and the logits move ~16× as far
 * (measured rel: int8 1.5–2%, q4 18–37%); top-1 on these 2-layer models with nearly flat logits
 * (max |logit| ≈ 5) measured 61–80% for 4 bits. mean Δ log p measured |·| ≤ 0.021 (q4), 0.002 (int8).
 */
const BOUNDS = {
  int8: { rel: 0.05, top1: 0.9, dlp: 0.01 },
  q4_0: { rel: 0.5, top1: 0.5, dlp: 0.06 },
  q4_1: { rel: 0.5, top1: 0.5, dlp: 0.06 },
} as const;

describe.each(['finch-tiny', 'finch-tiny-bf16'])('%s', (fixture) => {
  const path = join(FIX, fixture, 'model.pth');
  const tokens = seededTokens(128, 256);
  let f32: Float32Array | undefined;
  const ref = async (m: ReturnType<typeof openModel>) => (f32 ??= await ourLogits(m, tokens, 'wasm', 'f32', 1));

  it.each(Object.keys(BOUNDS) as (keyof typeof BOUNDS)[])('%s: within the README\'s bounds of the f32 run', async (w) => {
    const m = openModel(path);
    try {
      const a = compare(await ourLogits(m, tokens, 'wasm', w, 1), await ref(m), tokens, m.config.vocabSize);
      expect(a.rel, 'max |Δlogit| / max |logit|').toBeLessThanOrEqual(BOUNDS[w].rel);
      expect(a.top1, 'top-1 agreement').toBeGreaterThanOrEqual(BOUNDS[w].top1);
      expect(Math.abs(a.dlp), 'mean Δ log p of the next token').toBeLessThanOrEqual(BOUNDS[w].dlp);
    } finally {
      m.close();
    }
  }, 60_000);
});

const llama = await import('node-llama-cpp').catch((e: Error) => {
  console.log(`skipping the llama.cpp comparison: node-llama-cpp does not load (${e.message.split('\n')[0]})`);
  return null;
});

describe.skipIf(!llama)('llama.cpp on the same Q4_0 GGUF blocks', () => {
  /**
   * Our q4_0 logits (the plan target: the kernels' reference semantics, f64 activations) against llama.cpp's
   * on the Q4_0 export of the same checkpoint. Both use the same Q4_0 bytes for every projection and the
   * head; llama.cpp also rounds each activation row to Q8_0 (8 bits per 32) before its Q4_0 dot
   * products (an int8-sized rounding: ≤ 5% of the logit range at most, as int8 weights) and normalises
   * the f16 embedding where we store the normalised one (every matrix, the decay LoRA's included, is the
   * same Q4_0 bytes in both): measured max |Δ log-softmax| 1.9% (finch-tiny), 7.9% (bf16
   * fixture); bound 12%, while different blocks (q4_1's file) are 25–37% away.
   */
  it.each(['finch-tiny', 'finch-tiny-bf16'])('%s: our q4_0 logits and llama.cpp\'s agree; our Q4_0 error vs f32 is no larger than llama.cpp\'s', async (fixture) => {
    const path = join(FIX, fixture, 'model.pth'), m = openModel(path);
    try {
      const V = m.config.vocabSize, tokens = seededTokens(128, V);
      const oursF32 = await ourLogits(m, tokens, 'plan', 'f32'), oursQ4 = await ourLogits(m, tokens, 'plan', 'q4_0');
      const theirsF32 = await llamaLogits(path, m, tokens, 'f32', dir), theirsQ4 = await llamaLogits(path, m, tokens, 'q4_0', dir);
      if ('unavailable' in theirsF32 || 'unavailable' in theirsQ4) throw new Error(`llama.cpp did not run: ${JSON.stringify([theirsF32, theirsQ4].filter((r) => 'unavailable' in r))}`);
      const scale = maxAbs(oursF32);
      // the f32 exports agree to f32 rounding: the comparison below measures the formats, not the models
      expect(compare(theirsF32, oursF32, tokens, V, scale).lsm).toBeLessThan(1e-4);
      const same = compare(oursQ4, theirsQ4, tokens, V, scale);
      expect(same.lsm, 'max |Δ log-softmax| between our q4_0 and llama.cpp\'s Q4_0').toBeLessThanOrEqual(0.12);
      expect(same.top1).toBeGreaterThanOrEqual(0.9);
      const ourErr = compare(oursQ4, oursF32, tokens, V, scale), theirErr = compare(theirsQ4, theirsF32, tokens, V, scale);
      // Both errors are dominated by the same weight rounding (the same bytes), so they agree to ~1%; llama.cpp's
      // extra rounding (activations to Q8_0) moves its error by about that much, by the sequence: over 8 seeded
      // sequences per fixture (bench/accuracy.ts --sequences 8) our rms is the lower in 15 of 16 (ratio mean 0.998,
      // 0.994–1.002), the worst entry 0.97–1.03. This sequence: finch-tiny ours 0.2% below, finch-tiny-bf16 0.2%
      // above (a tenth of that our f16 rounding of the normalised embedding; the bf16 fixture's raw one is exact in
      // f16, so llama.cpp's is lossless). Asserted: no more than 2% above, for the typical (RMS over all T·V
      // entries) and the worst entry, and the next-token log-prob no worse.
      expect(ourErr.rms, 'rms Δ log-softmax vs f32: rwkvc q4_0 vs llama.cpp Q4_0').toBeLessThanOrEqual(theirErr.rms * 1.02);
      expect(ourErr.lsm, 'max |Δ log-softmax| vs f32').toBeLessThanOrEqual(theirErr.lsm * 1.02);
      expect(Math.abs(ourErr.dlp)).toBeLessThanOrEqual(Math.abs(theirErr.dlp) + 0.002);
      console.log(`${fixture} vs f32, rwkvc q4_0 / llama.cpp Q4_0: rms ${(100 * ourErr.rms).toFixed(3)}% / ${(100 * theirErr.rms).toFixed(3)}%, ` +
        `max ${(100 * ourErr.lsm).toFixed(2)}% / ${(100 * theirErr.lsm).toFixed(2)}%, mean Δ log p ${ourErr.dlp.toFixed(4)} / ${theirErr.dlp.toFixed(4)}; ` +
        `rwkvc vs llama.cpp on the same blocks: max ${(100 * same.lsm).toFixed(2)}%`);
    } finally {
      m.close();
    }
  }, 120_000);
});
