import { Command, Option } from 'commander';
import { openModel } from '../runtime/model.ts';
import { checkWritable } from '../runtime/checkpoint/fileio.ts';
import { DEFAULT_DSL } from '../driver/dsl.ts';
import { ONNX_WEIGHTS, writeOnnx } from '../driver/onnx/index.ts';

/** `rwkvc onnx`: a checkpoint as an ONNX model (the step model, or the Scan prefill model) for any ONNX runtime. */
export function onnxCommand(): Command {
  return new Command('onnx')
    .description('Export a checkpoint as an ONNX model (opset 17): token + state in, logits + next state out')
    .requiredOption('--model <path>', 'checkpoint (.pth or .safetensors, official or HF names)')
    .addOption(new Option('--weights <dtype>', 'storage of the matrices (f16: FLOAT16 initializers Cast to f32; activations stay f32)').choices(ONNX_WEIGHTS).default('f32'))
    .addOption(new Option('--kind <kind>', 'step: token int64 [1] → logits [V]; prefill: tokens int64 [T] → logits (the recurrence as a Scan over T)').choices(['step', 'prefill']).default('step'))
    .addOption(new Option('--logits <rows>', 'prefill: logits of every position [T, V], or of the last [V]').choices(['all', 'last']).default('all'))
    .option('--dsl <file>', 'model description (default: examples/finch.ts of this package)', DEFAULT_DSL)
    .requiredOption('-o, --out <file>', 'output .onnx (models over 1.5 GiB of tensors keep them in <out>.data beside it)')
    .addHelpText('after', [
      '', 'Inputs: token (int64 [1]; prefill: tokens [T]), state.{l}.att_shift [C], state.{l}.wkv [H, N, N], state.{l}.ffn_shift [C] (f32)',
      'Outputs: logits [V] (prefill: [T, V] or [V]), next.state.{l}.att_shift, next.state.{l}.wkv, next.state.{l}.ffn_shift',
      '', 'Examples:', '  rwkvc onnx --model RWKV-x060-World-1B6.pth --weights f16 -o rwkv6-1b6.onnx',
      '  rwkvc onnx --model model.pth --kind prefill --logits last -o prefill.onnx',
    ].join('\n'))
    .action(async (o) => {
      checkWritable(o.out); // before reading the model: a bad output path is found at once
      const m = openModel(o.model);
      try {
        const r = await writeOnnx(m, o.dsl, o.out, { kind: o.kind, weights: o.weights, logits: o.logits });
        const { nLayer: L, nEmbd: C, vocabSize: V } = m.config;
        process.stderr.write(`rwkvc: wrote ${o.out}${r.dataFile ? ` and ${r.dataFile}` : ''}: ${o.kind} model, ${L} layers, width ${C}, vocab ${V}, ${o.weights} matrices, ${(r.bytes / 2 ** 20).toFixed(1)} MiB\n`);
      } finally {
        m.close();
      }
    });
}

/**
 * `--target onnxruntime` beside the registry's targets (logits): the ONNX export run by onnxruntime-node,
 * a driver-level path, not a registered target (it runs an exported model, not a kernel plan).
 */
export function withOnnxruntime(target: Option): Option {
  const parse = target.parseArg;
  target.description += ', onnxruntime (the ONNX export on onnxruntime-node)';
  return target.argParser((v: string, prev: unknown) => (v === 'onnxruntime' ? v : parse ? parse(v, prev) : v));
}
