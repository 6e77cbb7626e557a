/**
 * The generated CUDA compiles with nvcc for sm_80 and sm_90 (`-Xptxas -v`), with no spill stores/loads
 * and no stack frame in the linear (matvec, matmul) and wkv kernels; every kernel's registers and static
 * shared memory are printed as a table.
 *
 * Plans: the fixtures' shape (finch-tiny), bench-0.1b, finch-1b6 and a 7B shape (L32 C4096), each in
 * every weight format, with decode, prefill (chunk 512) and a batch program (4 sequences). A kernel's
 * text depends only on its key (codegen.renderKernel), so the distinct keys of all these plans go into
 * one translation unit per arch: two nvcc runs in all, cached by source hash under out/cache/cuda/.
 * When nvcc is absent (PATH, /usr/local/cuda/bin) the tests say so and skip.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { modelPlan } from '../bench/model-plan.ts';
import type { ModelConfig } from '../kernels/config.ts';
import type { WeightDType } from '../kernels/plan.ts';
import { PRESETS } from '../runtime/presets.ts';
import { emitCuda, renderAll, translationUnit, type CudaKey } from '../targets/cuda/codegen.ts';
import { findNvcc, parsePtxas, ptxasReport, type PtxasReport } from '../targets/cuda/nvcc.ts';
import { FIXTURES } from './helpers/golden.ts';

const nvcc = findNvcc();
if (!nvcc) console.log('cuda-compile: SKIPPED: nvcc is not on PATH nor at /usr/local/cuda/bin/nvcc');

function fixtureConfig(): ModelConfig {
  const g = JSON.parse(readFileSync(join(FIXTURES, 'finch-tiny', 'golden.json'), 'utf8'));
  return {
    nLayer: g.n_layer, nEmbd: g.n_embd, headSize: g.head_size, nHead: g.n_head, dimFfn: g.dim_ffn,
    vocabSize: g.vocab_size, loraMix: g.lora_mix, loraDecay: g.lora_decay,
  };
}

const SHAPES: Record<string, ModelConfig> = {
  'fixtures (finch-tiny)': fixtureConfig(),
  'bench-0.1b': PRESETS['bench-0.1b'],
  'finch-1b6': PRESETS['finch-1b6'],
  '7B (L32 C4096)': PRESETS['finch-7b'],
};
const FORMATS: WeightDType[] = ['f32', 'bf16', 'f16', 'int8'];
const ARCHS = ['sm_80', 'sm_90'];
/** Kernel kinds that must not spill or keep a stack frame. */
const STRICT = new Set(['matvec', 'matmul', 'wkv']);

/** Every distinct kernel key of every plan, and which plans (shape/format) use it. */
function collectKeys() {
  const users = new Map<string, string[]>();
  for (const [shape, cfg] of Object.entries(SHAPES))
    for (const fmt of FORMATS) {
      const a = emitCuda(modelPlan({ ...cfg, dtype: fmt, batch: 4 }));
      for (const f of a.functions) {
        const u = users.get(f.key) ?? [];
        u.push(`${shape} ${fmt}`);
        users.set(f.key, u);
      }
    }
  const keys = [...users.keys()];
  const rendered = renderAll(keys.map((k) => JSON.parse(k) as CudaKey));
  return { users, rendered, cu: translationUnit('rwkvc compile check', rendered) };
}

describe.skipIf(!nvcc)('CUDA codegen compiles with nvcc', () => {
  it('every kernel of the fixture, bench-0.1b, finch-1b6 and 7B plans in every format, sm_80 and sm_90: no spills in linear and wkv', async () => {
    const { users, rendered, cu } = collectKeys();
    const reports: PtxasReport[] = await Promise.all(ARCHS.map((arch) => ptxasReport(cu, arch)));
    const rows: Record<string, string | number>[] = [];
    const bad: string[] = [];
    for (const r of rendered) {
      const row: Record<string, string | number> = { kernel: r.name };
      for (const rep of reports) {
        const k = rep.kernels.find((x) => x.name === r.name);
        expect(k, `${r.name} missing from ptxas output for ${rep.arch}`).toBeDefined();
        row[`${rep.arch} regs`] = k!.registers;
        row[`${rep.arch} smem`] = k!.smem;
        row[`${rep.arch} spill/stack`] = `${k!.spillStores}/${k!.spillLoads}/${k!.stackFrame}`;
        if (STRICT.has(r.key.kind) && (k!.spillStores || k!.spillLoads || k!.stackFrame))
          bad.push(`${r.name} (${rep.arch}): ${k!.spillStores} B spill stores, ${k!.spillLoads} B spill loads, ${k!.stackFrame} B stack frame`);
      }
      const u = users.get(JSON.stringify(r.key))!;
      row.used = u.length > 3 ? `${u.slice(0, 3).join(', ')} +${u.length - 3}` : u.join(', ');
      rows.push(row);
    }
    console.log(`ptxas (${reports.map((r) => `${r.arch}${r.cached ? ' cached' : ''}`).join(', ')}): ${rendered.length} distinct kernels`);
    console.table(rows);
    expect(bad).toEqual([]);
  }, 600_000);

  it('parses ptxas -v output', () => {
    const log = [
      "ptxas info    : Compiling entry function 'k3_wkv' for 'sm_80'",
      'ptxas info    : Function properties for k3_wkv',
      '    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads',
      'ptxas info    : Used 96 registers, used 1 barriers, 1040 bytes smem, 424 bytes cmem[0]',
    ].join('\n');
    expect(parsePtxas(log)).toEqual([{ name: 'k3_wkv', registers: 96, stackFrame: 8, spillStores: 4, spillLoads: 12, smem: 1040, cmem: 424 }]);
  });
});
