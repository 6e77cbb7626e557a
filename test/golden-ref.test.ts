/** The reference interpreter on the unfused Finch graph against the official implementation. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildGraph } from '../driver/dsl.ts';
import { openModel } from '../runtime/model.ts';
import { runTokens, parseMode } from '../runtime/run-tokens.ts';
import { loadRefTarget } from '../targets/ref/runtime.ts';
import { compareRun, FIXTURE_NAMES, FIXTURES, FORMATS, maxAbsDiff, readGolden } from './helpers/golden.ts';

async function run(fixture: string, file: string, mode: string) {
  const model = openModel(join(FIXTURES, fixture, file));
  const graph = await buildGraph('examples/finch.ts', model.config);
  const target = loadRefTarget(graph, model.read);
  const golden = readGolden(fixture);
  const logits = await runTokens(target, golden.tokens, parseMode(mode), model.config.vocabSize);
  const state = await target.readState();
  model.close();
  return { logits, state, golden };
}

describe.each(FIXTURE_NAMES)('reference interpreter on %s', (fixture) => {
  it.each(FORMATS)('%s matches the official logits and state (seq)', async (file) => {
    const { logits, state, golden } = await run(fixture, file, 'seq');
    const d = compareRun(logits, state, golden);
    expect(d.logits).toBeLessThanOrEqual(1e-4);
    expect(d.state).toBeLessThanOrEqual(1e-4);
  });

  it('step, seq and chunked modes agree within 1e-5 and match the official numbers', async () => {
    const seq = await run(fixture, 'model.pth', 'seq');
    for (const mode of ['step', 'chunks:5', 'chunks:1']) {
      const r = await run(fixture, 'model.pth', mode);
      expect(compareRun(r.logits, r.state, r.golden).logits).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(r.logits, seq.logits)).toBeLessThanOrEqual(1e-5);
      expect(compareRun(r.logits, r.state, { logits: seq.logits, state: seq.state }).state).toBeLessThanOrEqual(1e-5);
    }
  });
});
