import { count, RAW_HELP, samplingOptions, suggestOptions, targetOption, unescapeText, weightsOption } from './args.ts';
import { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { readFileSync } from 'node:fs';
import { checkWritable, writeFileAtomic } from '../runtime/checkpoint/fileio.ts';
import { UserError } from '../kernels/errors.ts';
import { load } from '../driver/load.ts';
import { loadWorldTokenizer } from '../runtime/tokenizer.ts';
import type { WeightDType } from '../kernels/plan.ts';

export function tokenizeCommand(): Command {
  return suggestOptions(new Command('tokenize'))
    .description('Encode text with the RWKV World tokenizer; prints the ids as JSON')
    .requiredOption('--vocab <file>', 'rwkv_vocab_v20230424.txt')
    .argument('[text]', 'text to encode; \\n, \\t and \\\\ in it are a newline, a tab and a backslash (default: standard input, taken literally)')
    .option('--raw', RAW_HELP)
    .addHelpText('after', `
Examples:
  rwkvc tokenize --vocab rwkv_vocab_v20230424.txt "Hello, world"
  rwkvc tokenize --vocab rwkv_vocab_v20230424.txt "User: hi\\n\\nAssistant:"     # two newlines, as run --prompt reads it
  rwkvc tokenize --vocab rwkv_vocab_v20230424.txt --raw 'C:\\new'          # a backslash and an n`)
    .action((text: string | undefined, o) => {
      const tok = loadWorldTokenizer(o.vocab);
      const input = text === undefined ? readFileSync(0, 'utf8') : o.raw ? text : unescapeText(text);
      process.stdout.write(JSON.stringify(tok.encode(input)) + '\n');
    });
}

export function detokenizeCommand(): Command {
  return suggestOptions(new Command('detokenize'))
    .description('Decode token ids (JSON array or comma list) back to text: exactly the decoded text when piped, a final newline added on a terminal')
    .requiredOption('--vocab <file>', 'rwkv_vocab_v20230424.txt')
    .argument('[ids]', 'e.g. [33155,45] or 33155,45 (default: standard input)')
    .addHelpText('after', '\nExample:\n  rwkvc detokenize --vocab rwkv_vocab_v20230424.txt 33155,45,40213')
    .action((ids: string | undefined, o) => {
      const tok = loadWorldTokenizer(o.vocab);
      const src = (ids ?? readFileSync(0, 'utf8')).trim().replace(/^\[|\]$/g, '');
      const list = src ? src.split(/[,\s]+/).map((x) => {
        if (!/^\d+$/.test(x)) throw new UserError(`detokenize: '${x}' is not a token id`);
        return Number(x);
      }) : [];
      // Piped, the output is the text's exact bytes (so `detokenize | tokenize` round-trips); on a
      // terminal a newline ends it, so the shell prompt does not land on the text's last line.
      process.stdout.write(tok.decode(list) + (process.stdout.isTTY ? '\n' : ''));
    });
}

export function runCommand(): Command {
  const cmd = new Command('run')
    .description('Generate text from a prompt, streaming it as it is produced')
    .requiredOption('--model <path>', 'checkpoint (.pth or .safetensors)')
    .requiredOption('--vocab <file>', 'rwkv_vocab_v20230424.txt')
    .requiredOption('--prompt <text>', 'the prompt; \\n, \\t and \\\\ in it are a newline, a tab and a backslash')
    .option('--raw', RAW_HELP)
    .addOption(targetOption('wasm'))
    .addOption(weightsOption())
    .option('--threads <n>', 'worker threads (wasm; default all cores)', count);
  samplingOptions(cmd, { maxTokens: 100, tokens: 'most tokens to generate', seed: 'random seed' })
    .option('--stop <text...>', 'stop strings (escapes as in --prompt, e.g. "\\n\\nUser:")')
    .option('--state-in <file>', 'start from a saved state')
    .option('--state-out <file>', 'save the state at the end (checked before generating; a symlink or special file is refused)')
    .addHelpText('after', `
Examples:
  rwkvc run --model RWKV-x060-World-1B6.pth --vocab rwkv_vocab_v20230424.txt --prompt "User: hi\\n\\nAssistant:"
  rwkvc run --model m.pth --vocab v.txt --prompt "Once" --temp 0 -n 20 --weights f16`)
    .action(async (o) => {
      // an unwritable --state-out is found now, not after the generation
      if (o.stateOut) checkWritable(o.stateOut);
      const bar = new SingleBar({ format: '{phase} [{bar}] {value}/{total}', clearOnComplete: true, stream: process.stderr }, Presets.shades_classic);
      let started = false;
      const tLoad = performance.now();
      const session = await load(o.model, {
        target: o.target, weights: o.weights as WeightDType, threads: o.threads, vocab: o.vocab,
        onProgress: (phase, done, total) => {
          if (!started) { bar.start(total, 0, { phase }); started = true; }
          bar.setTotal(total);
          bar.update(done, { phase });
        },
      });
      if (started) bar.stop();
      process.stderr.write(`rwkvc: loaded ${o.model} onto ${o.target} (${o.weights}) in ${((performance.now() - tLoad) / 1000).toFixed(1)} s\n`);
      if (o.stateIn) await session.state.fromBytes(readStateFile(o.stateIn), o.stateIn);
      const t0 = performance.now();
      let n = 0, tFirst = 0;
      const text = commandText(o);
      for await (const piece of session.generate(text.prompt, {
        maxTokens: o.maxTokens, temperature: o.temperature, topP: o.topP, topK: o.topK,
        presencePenalty: o.presencePenalty, frequencyPenalty: o.frequencyPenalty, seed: o.seed, stopStrings: text.stop,
        onToken: () => { if (n++ === 0) tFirst = performance.now(); },
      })) process.stdout.write(piece);
      const t1 = performance.now();
      process.stdout.write('\n');
      process.stderr.write(`rwkvc: ${n} tokens; first after ${(tFirst - t0).toFixed(0)} ms (prefill), then ${n > 1 ? (((n - 1) * 1000) / (t1 - tFirst)).toFixed(1) : '–'} tokens/s on ${o.target}\n`);
      if (o.stateOut) writeFileAtomic(o.stateOut, [await session.state.toBytes()]);
      session.model.dispose();
    });
  return suggestOptions(cmd);
}

/** `run`'s prompt and stop strings under the one escape rule (unescapeText), or as written with --raw. */
export function commandText(o: { prompt: string; stop?: string[]; raw?: boolean }): { prompt: string; stop?: string[] } {
  const t = o.raw ? (s: string) => s : unescapeText;
  return { prompt: t(o.prompt), stop: o.stop?.map(t) };
}

/** A state file's bytes; a missing or unreadable file is one line naming it. */
function readStateFile(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
