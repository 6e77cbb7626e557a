/** The session API on the fixture model: prefill/decode, state save/restore/fork, state files, batch. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { load } from '../driver/load.ts';
import { Session } from '../runtime/session.ts';
import { encodeState } from '../runtime/state-file.ts';
import { FIXTURES, maxAbsDiff, readGolden } from './helpers/golden.ts';

const model = join(FIXTURES, 'finch-tiny', 'model.safetensors');
const golden = readGolden('finch-tiny');
const V = 256;
const row = (t: number) => golden.logits.subarray(t * V, (t + 1) * V);
// The plan target computes in f64 but state crosses the TargetModel interface as f32 (what every real
// target stores), so a state that went through save/fork/batch differs by f32 rounding (~1e-7).
const SWAP = 1e-6;

describe('Session', () => {
  it('prefill and decode give the official logits; save/restore and fork continue exactly', async () => {
    const s = await load(model, { target: 'plan', batch: 4 });
    const toks = [...golden.tokens];
    const a = await s.prefill(toks.slice(0, 10));
    expect(maxAbsDiff(a, row(9))).toBeLessThan(1e-4);
    const snap = await s.state.save();
    const fork = await s.fork();
    const b = await s.decode(toks[10]);
    expect(maxAbsDiff(b, row(10))).toBeLessThan(1e-4);
    // the fork is still at token 10, independent of s
    const f = await fork.decode(toks[10]);
    expect(maxAbsDiff(f, b)).toBeLessThan(SWAP);
    await s.state.restore(snap);
    expect(maxAbsDiff(await s.decode(toks[10]), b)).toBeLessThan(SWAP);
    // state files: round trip, and refusal for another model
    const bytes = await s.state.toBytes();
    const other = await load(model, { target: 'plan' });
    await other.state.fromBytes(bytes);
    expect(maxAbsDiff(await other.decode(toks[11]), row(11))).toBeLessThan(1e-4);
    const foreign = encodeState(await s.state.save().then((x) => x.tensors), { ...s.config, nLayer: 3 });
    await expect(other.state.fromBytes(foreign, 'x.state')).rejects.toThrow(/x\.state: the state belongs to another model/);
    s.model.dispose();
    other.model.dispose();
  });

  it('a batch of sequences decoded together equals decoding each alone', async () => {
    const s = await load(model, { target: 'plan', batch: 3 });
    const prompts = [[1, 2, 3], [40, 50], [7], [9, 9, 9, 9]];
    const seqs = await Promise.all(prompts.map(async () => s.fork()));
    const alone: Float32Array[] = [];
    for (let i = 0; i < prompts.length; i++) {
      await seqs[i].prefill(prompts[i]);
      const f = await seqs[i].fork();
      alone.push(await f.decode(100 + i));
    }
    const together = await Session.decodeBatch(seqs, prompts.map((_, i) => 100 + i)); // 4 sequences > batch 3: two launches
    together.forEach((l, i) => expect(maxAbsDiff(l, alone[i])).toBeLessThan(SWAP));
    // and the states moved on: the next token agrees too
    const next = await seqs[1].decode(5);
    const ref = await (async () => { const r = await s.fork(); await r.reset(); await r.prefill([40, 50, 101, 5]); return r.logits!; })();
    expect(maxAbsDiff(next, ref)).toBeLessThan(SWAP);
    s.model.dispose();
  });
});

describe('state-tuned checkpoints', () => {
  it('blocks.N.att.time_state ([H][value][key]) is the initial wkv state', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { openCheckpoint, writeSafetensors } = await import('../runtime/checkpoint/index.ts');
    const src = openCheckpoint(model);
    const H = 2, N = 64;
    const ts = Float32Array.from({ length: 2 * H * N * N }, (_, i) => Math.sin(i * 0.37) * 0.5);
    const path = join(mkdtempSync(join(tmpdir(), 'rwkvc-ts-')), 'tuned.safetensors');
    writeSafetensors(path, [
      ...src.names().map((n) => ({ name: n, dtype: 'f32' as const, shape: src.info(n).shape, data: src.readF32(n) })),
      ...[0, 1].map((l) => ({ name: `blocks.${l}.att.time_state`, dtype: 'f32' as const, shape: [H, N, N], data: ts.subarray(l * H * N * N, (l + 1) * H * N * N) })),
    ]);
    const tuned = await load(path, { target: 'ref' });
    const got = await tuned.prefill([...golden.tokens]);
    // the same model without time_state, started from the transposed state by hand
    const plain = await load(model, { target: 'ref' });
    const st = await plain.state.save();
    const tensors = { ...st.tensors };
    for (const l of [0, 1]) {
      const w = new Float32Array(H * N * N);
      for (let h = 0; h < H; h++) for (let j = 0; j < N; j++) for (let i = 0; i < N; i++)
        w[h * N * N + i * N + j] = ts[l * H * N * N + h * N * N + j * N + i];
      tensors[`state.${l}.wkv`] = w;
    }
    await plain.state.restore({ tensors, logits: null });
    const want = await plain.prefill([...golden.tokens]);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
    expect(maxAbsDiff(got, row(15))).toBeGreaterThan(1e-3); // the tuned state really changed the output
  });
});
