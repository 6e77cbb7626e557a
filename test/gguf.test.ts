/**
 * The GGUF export (runtime/checkpoint/gguf-write.ts): the file's structure read back here, and
 * llama.cpp (node-llama-cpp's prebuilt ggml) running the exported fixtures against the official logits.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeGguf, type GgufWeights } from '../runtime/checkpoint/gguf-write.ts';
import { openCheckpoint } from '../runtime/checkpoint/index.ts';
import { openModel } from '../runtime/model.ts';
import { dequantize, f16ToF32 } from '../kernels/dtype.ts';
import type { ModelConfig } from '../kernels/config.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import { loadWorldTokenizer } from '../runtime/tokenizer.ts';
import { TOKENIZER_GOLDEN, VOCAB, vocabSkipReason } from './helpers/vocab.ts';

const FIX = join(import.meta.dirname, 'fixtures');
const dir = mkdtempSync(join(tmpdir(), 'rwkvc-gguf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Info { name: string; ne: number[]; type: number; offset: number }

/** Just enough of a GGUF v3 reader to check what the writer wrote. */
function readGguf(bytes: Uint8Array) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  const u32 = () => { const v = dv.getUint32(o, true); o += 4; return v; };
  const u64 = () => { const v = Number(dv.getBigUint64(o, true)); o += 8; return v; };
  const str = () => { const n = u64(); const s = new TextDecoder().decode(bytes.subarray(o, o + n)); o += n; return s; };
  const value = (t: number): unknown => {
    switch (t) {
      case 4: return u32();
      case 5: { const v = dv.getInt32(o, true); o += 4; return v; }
      case 6: { const v = dv.getFloat32(o, true); o += 4; return v; }
      case 8: return str();
      case 9: { const et = u32(), n = u64(); return Array.from({ length: n }, () => value(et)); }
      default: throw new Error(`value type ${t}`);
    }
  };
  expect(u32()).toBe(0x46554747);
  expect(u32()).toBe(3);
  const nt = u64(), nkv = u64();
  const kv = new Map<string, unknown>();
  for (let i = 0; i < nkv; i++) { const k = str(); kv.set(k, value(u32())); }
  const tensors: Info[] = [];
  for (let i = 0; i < nt; i++) {
    const name = str(), nd = u32();
    const ne = Array.from({ length: nd }, u64);
    tensors.push({ name, ne, type: u32(), offset: u64() });
  }
  const align = (kv.get('general.alignment') as number) ?? 32;
  return { kv, tensors, dataStart: Math.ceil(o / align) * align };
}

const TYPE_BYTES: Record<number, (n: number) => number> = { 0: (n) => 4 * n, 1: (n) => 2 * n, 30: (n) => 2 * n, 8: (n) => (n / 32) * 34 };

describe('GGUF export', () => {
  it.each(['f32', 'f16', 'bf16', 'q8_0'] as GgufWeights[])('finch-tiny as %s: llama.cpp names, ggml shapes, aligned data', (w) => {
    const m = openModel(join(FIX, 'finch-tiny', 'model.safetensors'));
    const path = join(dir, `tiny.${w}.gguf`);
    writeGguf(path, m.config, m.read, w);
    const bytes = readFileSync(path);
    const { kv, tensors, dataStart } = readGguf(bytes);
    const { nLayer: L, nEmbd: C, dimFfn: F, vocabSize: V } = m.config;
    expect(kv.get('general.architecture')).toBe('rwkv6');
    expect([kv.get('rwkv6.block_count'), kv.get('rwkv6.embedding_length'), kv.get('rwkv6.feed_forward_length'), kv.get('rwkv6.wkv.head_size')]).toEqual([L, C, F, 64]);
    const toks = kv.get('tokenizer.ggml.tokens') as string[];
    expect(toks).toHaveLength(V);
    expect(toks[11]).toBe('\\n'); // id 1 + byte 10, escaped as llama.cpp's converter writes it
    expect(tensors).toHaveLength(6 + L * 24);
    const byName = new Map(tensors.map((t) => [t.name, t]));
    expect(byName.get('output.weight')!.ne).toEqual([C, V]);
    expect(byName.get('blk.1.channel_mix_value.weight')!.ne).toEqual([F, C]);
    expect(byName.get('blk.0.time_mix_w2.weight')!.ne).toEqual([32, C, 5]);
    expect(byName.get('blk.0.time_mix_lerp_fused.weight')!.ne).toEqual([C, 1, 1, 5]);
    let end = 0;
    for (const t of tensors) {
      expect(t.offset % 32, t.name).toBe(0);
      const n = t.ne.reduce((a, b) => a * b, 1);
      end = Math.max(end, t.offset + TYPE_BYTES[t.type](n));
    }
    expect(bytes.length).toBe(dataStart + end);
    // a matrix's bytes decode to the values our own format of the same name computes with
    const head = byName.get('output.weight')!, at = dataStart + head.offset;
    const ours = dequantize(m.read('head.weight'), C, w === 'q8_0' ? 'int8' : w);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    for (const i of [0, 1, 31, 32, 1000, C * V - 1]) {
      let v: number;
      if (w === 'f32') v = dv.getFloat32(at + 4 * i, true);
      else if (w === 'f16') v = f16ToF32(dv.getUint16(at + 2 * i, true));
      else if (w === 'bf16') { const b = new DataView(new ArrayBuffer(4)); b.setUint32(0, dv.getUint16(at + 2 * i, true) << 16); v = b.getFloat32(0); }
      else { const blk = at + Math.floor(i / 32) * 34; v = f16ToF32(dv.getUint16(blk, true)) * dv.getInt8(blk + 2 + (i % 32)); }
      expect(v, `element ${i}`).toBe(ours[i]);
    }
  });
});

describe('GGUF export errors', () => {
  it('an unwritable path is one error naming it', () => {
    const m = openModel(join(FIX, 'finch-tiny', 'model.safetensors'));
    const path = join(dir, 'no-such-dir', 'x.gguf');
    expect(() => writeGguf(path, m.config, m.read, 'f16')).toThrow(/no-such-dir\/x\.gguf: cannot write: the folder .*no-such-dir does not exist/);
  });
});

const llama = await import('node-llama-cpp').catch((e: Error) => {
  console.log(`skipping the llama.cpp checks: node-llama-cpp does not load (${e.message.split('\n')[0]})`);
  return null;
});

describe.skipIf(!llama)('llama.cpp runs the exported fixtures', () => {
  // log-probabilities (node-llama-cpp gives probabilities, softmax of the logits) against the official
  // logits' log-softmax, token by token from a zero state
  async function worstLogProb(fixture: string, w: GgufWeights) {
    const m = openModel(join(FIX, fixture, 'model.safetensors'));
    const path = join(dir, `${fixture}.${w}.gguf`);
    writeGguf(path, m.config, m.read, w);
    const g = openCheckpoint(join(FIX, fixture, 'golden.safetensors'));
    const tokens = Array.from(g.readF32('tokens')), gold = g.readF32('logits'), V = m.config.vocabSize;
    const l = await llama!.getLlama({ gpu: false, build: 'never', logLevel: llama!.LlamaLogLevel.error });
    const model = await l.loadModel({ modelPath: path });
    const ctx = await model.createContext({ contextSize: 64, threads: 1 });
    const seq = ctx.getSequence();
    let worst = 0, top1 = 0;
    try {
      for (let t = 0; t < tokens.length; t++) {
        const [r] = await seq.controlledEvaluate([[tokens[t] as never, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }]]);
        const p = r!.next!.probabilities!;
        const row = gold.subarray(t * V, (t + 1) * V);
        const mx = Math.max(...row);
        let z = 0;
        for (const v of row) z += Math.exp(v - mx);
        for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(row[i] - mx - Math.log(z) - Math.log(p.get(i as never) ?? 0)));
        if ([...p.keys()][0] === row.indexOf(mx)) top1++;
      }
    } finally {
      await ctx.dispose(); await model.dispose(); await l.dispose();
    }
    return { worst, top1: top1 / tokens.length };
  }

  it('a file llama.cpp refuses makes the bench peer unavailable with a reason, not a crash', async () => {
    const { openLlamaCpp } = await import('../bench/llama-cpp.ts');
    const bad = join(dir, 'truncated.gguf');
    const m = openModel(join(FIX, 'finch-tiny', 'model.safetensors'));
    writeGguf(bad, m.config, m.read, 'f32');
    writeFileSync(bad, readFileSync(bad).subarray(0, 5000));
    const s = await openLlamaCpp(bad, 'f32', 1, m.config.vocabSize);
    expect('unavailable' in s && s.unavailable).toMatch(/llama\.cpp could not run .*truncated\.gguf/);
  });

  const noVocab = vocabSkipReason(true);
  if (noVocab) console.log(`skipping the GGUF vocabulary check: ${noVocab} (the World vocabulary is not bundled)`);
  it.skipIf(!!noVocab)('with the World vocabulary, llama.cpp tokenizes the golden texts to the official ids', async () => {
    const cfg: ModelConfig = { nLayer: 1, nEmbd: 64, headSize: 64, nHead: 1, dimFfn: 224, vocabSize: 65536, loraMix: 32, loraDecay: 64 };
    const st = join(dir, 'full-vocab.safetensors'), path = join(dir, 'full-vocab.gguf');
    writeRandomModel(st, cfg, 3, 'f32');
    const m = openModel(st);
    writeGguf(path, m.config, m.read, 'f16', { vocab: loadWorldTokenizer(VOCAB) });
    const golden = JSON.parse(readFileSync(TOKENIZER_GOLDEN, 'utf8')) as { cases: { text: string; ids: number[] }[] };
    const l = await llama!.getLlama({ gpu: false, build: 'never', logLevel: llama!.LlamaLogLevel.error });
    const model = await l.loadModel({ modelPath: path });
    try {
      for (const c of golden.cases) {
        expect(Array.from(model.tokenize(c.text)), JSON.stringify(c.text)).toEqual(c.ids);
        expect(model.detokenize(c.ids as never[]), JSON.stringify(c.text)).toBe(c.text);
      }
    } finally {
      await model.dispose(); await l.dispose();
    }
  }, 60_000);

  it.each(['finch-tiny', 'finch-tiny-bf16'])('%s as f32: official log-probabilities within 1e-4', async (fixture) => {
    const { worst, top1 } = await worstLogProb(fixture, 'f32');
    console.log(`llama.cpp on ${fixture} (F32 GGUF): max |Δ log p| = ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-4);
    expect(top1).toBe(1);
  }, 60_000);
});
