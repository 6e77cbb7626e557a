import { suggestOptions, targetOption, threads, weightsOption } from './args.ts';
import { InvalidArgumentError } from 'commander';
import { Command, type Option } from 'commander';
import { join } from 'node:path';
import { writeSafetensors } from '../runtime/checkpoint/index.ts';
import { UserError } from '../kernels/errors.ts';
import { initialState, openModel } from '../runtime/model.ts';
import { parseMode, runTokens } from '../runtime/run-tokens.ts';
import { loadTargetForModel } from '../driver/load.ts';
import { DEFAULT_DSL } from '../driver/dsl.ts';
import { loadOnnxRuntime } from '../driver/onnx/index.ts';
import { withOnnxruntime } from './onnx.ts';
import { GGUF_WEIGHTS, ggufFor, llamaCppLogits } from '../bench/llama-cpp.ts';
import type { WeightDType } from '../kernels/plan.ts';
import type { OpenModel } from '../runtime/model.ts';

/**
 * `--tokens 5,17,3`: each a whole number written out (no 1.5, 1e3, NaN or hex), in the vocabulary; an id
 * outside it is reported as written (2^31 as 2147483648, never wrapped).
 */
export function parseTokens(s: string, vocab: number): Int32Array {
  const ids = s.split(',').map((x) => x.trim());
  const out = new Int32Array(ids.length);
  const clip = (x: string) => (x.length > 40 ? `${x.slice(0, 40)}…` : x);
  ids.forEach((x, i) => {
    if (!/^\d+$/.test(x)) throw new UserError(`--tokens: '${clip(x)}' is not a token id (a whole number 0..${vocab - 1})`);
    const id = x.replace(/^0+(?=\d)/, '');
    if (Number(id) >= vocab) throw new UserError(`--tokens: token id ${clip(id)} is outside the vocabulary (0..${vocab - 1})`);
    out[i] = Number(id);
  });
  return out;
}

/** `--mode`, checked when parsed. */
function mode(v: string): string {
  try {
    parseMode(v);
  } catch {
    throw new InvalidArgumentError('expected step, seq or chunks:N (N > 0).');
  }
  return v;
}

export function logitsCommand(): Command {
  return suggestOptions(new Command('logits'))
    .description('Run token ids through a model and write the logits of every position and the final state')
    .requiredOption('--model <path>', 'checkpoint (.pth or .safetensors, official or Hugging Face names)')
    .requiredOption('--tokens <ids>', 'comma-separated token ids, e.g. 5,17,3')
    .option('--mode <mode>', 'step | seq | chunks:N', mode, 'seq')
    .addOption(withLlamaCpp(withOnnxruntime(targetOption('wasm'))))
    .addOption(weightsOption('weight storage for compiled targets'))
    .option('--threads <n>', 'worker threads (wasm)', threads)
    .option('--dsl <file>', 'model description (default: examples/finch.ts of this package)', DEFAULT_DSL)
    .requiredOption('--out <file>', 'output .safetensors: logits [T, V], state.{l}.att_shift/wkv/ffn_shift')
    .addHelpText('after', `
Prints one line: the logits' shape, the top 5 ids of the last row (id:logit), and the file written.

Examples:
  rwkvc logits --model model.pth --tokens 5,17,3 --out out.safetensors
  rwkvc logits --model model.pth --tokens 5,17,3 --mode chunks:2 --target plan --out out.safetensors`)
    .action(async (o) => {
      const model = openModel(o.model);
      const tokens = parseTokens(o.tokens, model.config.vocabSize);
      const mode = parseMode(o.mode);
      if (o.target === 'llama.cpp') return await llamaCppRun(o.model, model, tokens, o.weights, o.threads ?? 1, o.out);
      const target = o.target === 'onnxruntime'
        ? await loadOnnxRuntime(model, { dsl: o.dsl, weights: o.weights, threads: o.threads, logits: 'all' })
        : await loadTargetForModel(o.target, model, { dsl: o.dsl, weights: o.weights, threads: o.threads, logits: 'all' });
      try {
        const init = initialState(model);
        if (init) await target.writeState(init);
        const logits = await runTokens(target, tokens, mode, model.config.vocabSize);
        const state = await target.readState();
        const { nHead: H, headSize: N, nEmbd: C } = model.config;
        writeSafetensors(o.out, [
          { name: 'logits', dtype: 'f32', shape: [tokens.length, model.config.vocabSize], data: logits },
          ...Object.entries(state).map(([name, data]) => ({
            name, dtype: 'f32' as const, shape: name.endsWith('.wkv') ? [H, N, N] : [C], data,
          })),
        ]);
        const V = model.config.vocabSize;
        process.stdout.write(`logits [${tokens.length}, ${V}] on ${target.target} (${o.mode}); last row top-5 ${topK(logits.subarray((tokens.length - 1) * V), 5)}; ` +
          `+ ${Object.keys(state).length} state tensors → ${o.out}\n`);
      } finally {
        target.dispose();
        model.close();
      }
    });
}

/**
 * `--target llama.cpp` beside the registry's targets: the checkpoint's GGUF export (written once into
 * out/cache/, in the --weights format: int8 is Q8_0, q4_0/q4_1 ggml's own blocks; the architecture the
 * writer picks for the checkpoint's family) run by llama.cpp through node-llama-cpp (bench/llama-cpp.ts).
 * A driver-level path, not a registered target: it runs an exported model, not a kernel plan.
 */
function withLlamaCpp(target: Option): Option {
  const parse = target.parseArg;
  target.description += ', llama.cpp (the GGUF export on llama.cpp; log-probabilities, no state)';
  return target.argParser((v: string, prev: unknown) => (v === 'llama.cpp' ? v : parse ? parse(v, prev) : v));
}

/**
 * All tokens through llama.cpp in one batch; the rows are its log-probabilities (node-llama-cpp gives
 * probabilities, not logits: the logits up to one constant per row), written as `logits` with no state.
 */
async function llamaCppRun(path: string, model: OpenModel, tokens: Int32Array, weights: WeightDType, threads: number, out: string): Promise<void> {
  try {
    const gguf = ggufFor(path, model.config, model.read, GGUF_WEIGHTS[weights], join('out', 'cache'));
    const r = await llamaCppLogits(gguf, tokens, model.config.vocabSize, threads);
    if ('unavailable' in r) throw new UserError(`--target llama.cpp: ${r.unavailable}`);
    const V = model.config.vocabSize;
    writeSafetensors(out, [{ name: 'logits', dtype: 'f32', shape: [tokens.length, V], data: r.logprobs }]);
    process.stdout.write(`log-probabilities [${tokens.length}, ${V}] on ${r.name}, ${GGUF_WEIGHTS[weights].toUpperCase()} (${gguf}); ` +
      `last row top-5 ${topK(r.logprobs.subarray((tokens.length - 1) * V), 5)} → ${out}\n`);
  } finally {
    model.close();
  }
}

/** The k largest entries of a row as `id:logit` (4 decimals), largest first. */
export function topK(row: Float32Array, k: number): string {
  return [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k).map((i) => `${i}:${row[i]!.toFixed(4)}`).join(' ');
}
