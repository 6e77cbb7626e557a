// A Blob checkpoint (a browser File; here Node's fs.openAsBlob) is fetched a row slice at a time for a
// matrix the WASM runtime converts in slices (over 1M values: finch-3b's 65536-row head is 320 MiB of
// bf16), not whole; the logits are bit-identical to the positioned-read load from the file.
import { mkdtempSync, openAsBlob, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import type { WeightDType } from '../kernels/plan.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import { openModel } from '../runtime/model.ts';
import { weightProvider } from '../driver/load.ts';
import { openCheckpointBlob } from '../runtime/checkpoint/blob.ts';
import { checkpointProvider } from '../runtime/checkpoint/provider.ts';
import { compileWasm } from '../targets/wasm/codegen.ts';
import { loadWasmArtifact } from '../targets/wasm/runtime.ts';

const dir = mkdtempSync(join(tmpdir(), 'rwkvc-blob-rows-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('rows of the embedding (ln0 folded) and head fetched in slices; logits bit-identical to the file load', async () => {
  // vocabulary 5000 × 256: 1.28M values, over the runtime's 1M-value slice
  const cfg = { nLayer: 1, nEmbd: 256, headSize: 64, nHead: 4, dimFfn: 896, vocabSize: 5000, loraMix: 32, loraDecay: 64 };
  const path = join(dir, 'm.safetensors');
  writeRandomModel(path, cfg, 3, 'bf16');
  for (const weights of ['int8', 'bf16'] as WeightDType[]) {
    const { plan } = compileGraph(finch(cfg), cfg, { weights, logits: 'last' });
    const art = compileWasm(plan, { relaxed: false });
    const m = openModel(path);
    const fromFile = await loadWasmArtifact(art, weightProvider(plan, m), { threads: 1, relaxed: false });
    const want = await fromFile.run('prefill', Int32Array.from([1, 2, 3]));
    fromFile.dispose();
    m.close();

    const blob = await openAsBlob(path);
    const reads: number[] = [];
    const slice = blob.slice.bind(blob);
    blob.slice = (a?: number, b?: number) => { reads.push((b ?? blob.size) - (a ?? 0)); return slice(a, b); };
    const ckpt = await openCheckpointBlob(blob, 'm.safetensors');
    const fromBlob = await loadWasmArtifact(art, checkpointProvider(plan, ckpt), { threads: 1, relaxed: false });
    const got = await fromBlob.run('prefill', Int32Array.from([1, 2, 3]));
    fromBlob.dispose();
    expect(got, weights).toEqual(want);
    // emb and head: 4096 + 904 rows each (a whole number of 16-row panels per 1M values), never all 5000 rows
    const rows = (n: number) => n * 256 * 2;
    expect(reads.filter((r) => r === rows(4096)).length, weights).toBe(2);
    expect(reads.filter((r) => r === rows(904)).length, weights).toBe(2);
    expect(Math.max(...reads), weights).toBeLessThan(rows(5000));
  }
}, 60_000);
