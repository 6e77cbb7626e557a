/**
 * The ONNX export from a checkpoint (what `rwkvc onnx` writes) and the export run by onnxruntime-node
 * (what `rwkvc logits --target onnxruntime` runs, step by step or through the Scan prefill model).
 */
import { basename } from 'node:path';
import type { OpenModel } from '../../runtime/model.ts';
import type { TargetModel } from '../../targets/backend.ts';
import { UserError } from '../../kernels/errors.ts';
import { checkWritable, writeFileAtomic } from '../../runtime/checkpoint/fileio.ts';
import { buildGraph } from '../dsl.ts';
import { checkThreads } from '../threads.ts';
import { exportOnnx, ONNX_WEIGHTS, weightBytes, type OnnxExportOptions, type OnnxWeights } from './export.ts';
import { createOrtModel } from './ort-model.ts';

export { exportOnnx, ONNX_WEIGHTS, type OnnxWeights } from './export.ts';

/** Past this many bytes of tensors the model keeps them in a `.data` file beside it (protobuf's limit is 2 GiB). */
export const EXTERNAL_DATA_BYTES = 1.5 * 2 ** 30;

export function checkOnnxWeights(w: string): asserts w is OnnxWeights {
  if (!(ONNX_WEIGHTS as readonly string[]).includes(w))
    throw new UserError(`--weights: the ONNX export stores f32 or f16 matrices, not '${w}'`);
}

/** Both models of a checkpoint, in memory (small models: tests, `logits`, the bench). */
export async function exportModels(model: OpenModel, dsl: string, weights: string, logits: 'all' | 'last') {
  checkOnnxWeights(weights);
  if (weightBytes(model.config, weights) > EXTERNAL_DATA_BYTES)
    throw new UserError(`${model.path}: too large to run from memory through onnxruntime here (write it with rwkvc onnx, which keeps the weights in a .data file)`);
  const graph = await buildGraph(dsl, model.config);
  const step = exportOnnx(graph, model.config, model.read, { kind: 'step', weights });
  const prefill = exportOnnx(graph, model.config, model.read, { kind: 'prefill', weights, logits });
  return { step: step.model, prefill: prefill.model };
}

/** Write one model to `out` (and `out.data` when its tensors are too big for one protobuf). */
export async function writeOnnx(model: OpenModel, dsl: string, out: string, o: Pick<OnnxExportOptions, 'kind' | 'weights' | 'logits'>): Promise<{ bytes: number; dataFile: string | null }> {
  checkOnnxWeights(o.weights);
  const external = weightBytes(model.config, o.weights) > EXTERNAL_DATA_BYTES ? `${basename(out)}.data` : undefined;
  checkWritable(out);
  if (external) checkWritable(`${out}.data`);
  const graph = await buildGraph(dsl, model.config);
  const e = exportOnnx(graph, model.config, model.read, { ...o, externalData: external, doc: `RWKV-6 ${o.kind} model exported by rwkvc from ${basename(model.path)}` });
  // the data file first: a model file never points at a data file that is not there
  if (external) writeFileAtomic(`${out}.data`, e.data);
  writeFileAtomic(out, [e.model]);
  return { bytes: e.model.length + e.data.reduce((a, c) => a + c.length, 0), dataFile: external ? `${out}.data` : null };
}

/** The export on onnxruntime-node's CPU EP (intraOpNumThreads = threads). */
export async function loadOnnxRuntime(model: OpenModel, o: { dsl: string; weights: string; threads?: number; logits: 'all' | 'last' }): Promise<TargetModel> {
  checkThreads(o.threads);
  const { step, prefill } = await exportModels(model, o.dsl, o.weights, o.logits);
  const ort = await import('onnxruntime-node').catch((e: Error) => {
    // an optional peer dependency: its install fetches native binaries (and, on Linux x64, CUDA's from nuget.org)
    throw new UserError(`--target onnxruntime needs the onnxruntime-node package (npm install onnxruntime-node): ${e.message.split('\n')[0]}`);
  });
  return createOrtModel(ort, model.config, step, prefill, { threads: o.threads, label: 'onnxruntime' });
}
