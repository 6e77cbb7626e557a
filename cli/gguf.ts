import { Command, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { writeGguf, type GgufFormat } from '../runtime/checkpoint/gguf-write.ts';
import { openModel } from '../runtime/model.ts';
import { loadWorldTokenizer } from '../runtime/tokenizer.ts';
import { basename } from 'node:path';
import { checkWritable } from '../runtime/checkpoint/fileio.ts';

/** `rwkvc gguf`: a checkpoint as a GGUF file for llama.cpp (what `rwkvc bench` runs its peer on). */
export function ggufCommand(): Command {
  return new Command('gguf')
    .description('Write a checkpoint as a GGUF file for llama.cpp (architecture rwkv6)')
    .requiredOption('--model <path>', 'checkpoint (.pth or .safetensors, official or HF names)')
    .addOption(new Option('--weights <type>', 'storage of the matrices (vectors stay F32)').choices(['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1']).default('f16'))
    .option('--vocab <file>', 'rwkv_vocab_v20230424.txt, so llama.cpp can tokenize text (else placeholder tokens: ids only)')
    .requiredOption('-o, --out <file>', 'output .gguf')
    .addHelpText('after', '\nExamples:\n  rwkvc gguf --model RWKV-x060-World-1B6.pth --vocab rwkv_vocab_v20230424.txt --weights q8_0 -o rwkv6-1b6-q8_0.gguf')
    .action((o) => {
      checkWritable(o.out); // before reading the model: a bad output path is found at once
      const m = openModel(o.model);
      try {
        const vocab = o.vocab ? loadWorldTokenizer(o.vocab) : undefined;
        const bar = new SingleBar({ format: 'gguf [{bar}] {value}/{total} layers', clearOnComplete: true, stream: process.stderr }, Presets.shades_classic);
        bar.start(m.config.nLayer, 0);
        writeGguf(o.out, m.config, m.read, o.weights as GgufFormat, { name: basename(o.model), vocab, onLayer: (d, n) => { bar.setTotal(n); bar.update(d); } });
        bar.stop();
        process.stderr.write(`rwkvc: wrote ${o.out}: ${m.config.nLayer} layers, width ${m.config.nEmbd}, ${o.weights}${vocab ? '' : ', placeholder vocabulary'}\n`);
      } finally {
        m.close();
      }
    });
}
