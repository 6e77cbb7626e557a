import { count, targetOption } from './args.ts';
import { Command, Option } from 'commander';
import { writeSafetensors } from '../runtime/checkpoint/index.ts';
import { UserError } from '../kernels/errors.ts';
import { initialState, openModel } from '../runtime/model.ts';
import { parseMode, runTokens } from '../runtime/run-tokens.ts';
import { DEFAULT_DSL, loadTargetForModel } from '../driver/load.ts';

function parseTokens(s: string, vocab: number): Int32Array {
  const ids = s.split(',').map((x) => x.trim());
  const out = new Int32Array(ids.length);
  ids.forEach((x, i) => {
    if (!/^\d+$/.test(x) || Number(x) >= vocab) throw new UserError(`--tokens: '${x}' is not a token id in 0..${vocab - 1}`);
    out[i] = Number(x);
  });
  return out;
}

export function logitsCommand(): Command {
  return new Command('logits')
    .description('Run token ids through a model and write the logits of every position and the final state')
    .requiredOption('--model <path>', 'checkpoint (.pth or .safetensors, official or Hugging Face names)')
    .requiredOption('--tokens <ids>', 'comma-separated token ids, e.g. 5,17,3')
    .option('--mode <mode>', 'step | seq | chunks:N', 'seq')
    .addOption(targetOption('ref'))
    .option('--weights <dtype>', 'weight storage for compiled targets: f32|bf16|f16|int8', 'f32')
    .option('--threads <n>', 'worker threads (wasm)', count)
    .option('--dsl <file>', 'model description (default: examples/finch.ts of this package)', DEFAULT_DSL)
    .requiredOption('--out <file>', 'output .safetensors: logits [T, V], state.{l}.att_shift/wkv/ffn_shift')
    .addHelpText('after', '\nExample:\n  rwkvc logits --model model.pth --tokens 5,17,3 --mode chunks:2 --target plan --out out.safetensors')
    .action(async (o) => {
      const model = openModel(o.model);
      const tokens = parseTokens(o.tokens, model.config.vocabSize);
      const mode = parseMode(o.mode);
      const target = await loadTargetForModel(o.target, model, { dsl: o.dsl, weights: o.weights, threads: o.threads, logits: 'all' });
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
        process.stderr.write(`rwkvc: ${tokens.length} tokens through ${target.target} (${o.mode}) → ${o.out}\n`);
      } finally {
        target.dispose();
        model.close();
      }
    });
}
