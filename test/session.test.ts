/** The session API on the fixture model: prefill/decode, state save/restore/fork, state files, batch. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { load } from '../runtime/load.ts';
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
