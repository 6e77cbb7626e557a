/**
 * `rwkvc chat`: an interactive chat in the World format (`User: …\n\nAssistant:`), the reply streamed as
 * it is generated and ended at the model's `\n\n`. The state carries the conversation: each turn feeds
 * only its own tokens, and every token of a reply (its closing `\n\n` included) is fed back, so the state
 * after a turn is the state after the whole transcript. Slash commands save, load and reset it.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { RAW_HELP, samplingOptions, suggestOptions, targetOption, threads, unescapeText, weightsOption } from './args.ts';
import { UserError } from '../kernels/errors.ts';
import { load } from '../driver/load.ts';
import { TURN_END, userTurn } from '../driver/serve/chat-format.ts';
import { checkWritable, writeFileAtomic } from '../runtime/checkpoint/fileio.ts';
import { Generation } from '../runtime/generation.ts';
import { createRng } from '../runtime/sampler.ts';
import type { Session } from '../runtime/session.ts';
import { END_OF_TEXT } from '../runtime/world-tokenizer.ts';
import type { WeightDType } from '../kernels/plan.ts';

const HELP = `commands:
  /save FILE   save the conversation's state (a state file, as rwkvc run --state-out writes)
  /load FILE   continue from a saved state
  /reset       forget the conversation
  /help        this list
  /quit        leave (so does Ctrl-D); Ctrl-C stops a reply`;

export function chatCommand(): Command {
  const cmd = new Command('chat')
    .description('Chat with a model in the terminal (World chat format), the state carried from turn to turn')
    .requiredOption('--model <path>', 'checkpoint (.pth or .safetensors)')
    .requiredOption('--vocab <file>', 'rwkv_vocab_v20230424.txt')
    .addOption(targetOption('wasm'))
    .addOption(weightsOption())
    .option('--threads <n>', 'worker threads (wasm; default all cores)', threads);
  samplingOptions(cmd, { maxTokens: 200, tokens: 'most tokens per reply', seed: 'random seed (for the whole chat)' })
    .option('--stop <text...>', 'stop strings besides the turn end (\\n\\n); escapes as in `run --prompt`')
    .option('--raw', RAW_HELP)
    .option('--state-in <file>', 'start from a saved state')
    .addHelpText('after', `
${HELP}

Example:
  rwkvc chat --model RWKV-x060-World-1B6.pth --vocab rwkv_vocab_v20230424.txt --temperature 1 --top-p 0.3`)
    .action(async (o) => {
      const bar = new SingleBar({ format: '{phase} [{bar}] {value}/{total}', clearOnComplete: true, stream: process.stderr }, Presets.shades_classic);
      let started = false;
      const session = await load(o.model, {
        target: o.target, weights: o.weights as WeightDType, threads: o.threads, vocab: o.vocab,
        onProgress: (phase, done, total) => {
          if (!started) { bar.start(total, 0, { phase }); started = true; }
          bar.setTotal(total);
          bar.update(done, { phase });
        },
      });
      if (started) bar.stop();
      if (o.stateIn) await session.state.fromBytes(readState(o.stateIn), o.stateIn);
      await chatLoop(session, { ...o, stop: chatStops(o) });
      session.model.dispose();
    });
  return suggestOptions(cmd);
}

/** The stop strings under `run --stop`'s one escape rule (unescapeText), or as written with --raw. */
export function chatStops(o: { stop?: string[]; raw?: boolean }): string[] | undefined {
  return o.raw ? o.stop : o.stop?.map(unescapeText);
}

interface ChatOptions {
  maxTokens: number; temperature: number; topP: number; topK: number; presencePenalty: number; frequencyPenalty: number;
  seed?: number; stop?: string[];
}

async function chatLoop(session: Session, o: ChatOptions): Promise<void> {
  const tty = !!process.stdin.isTTY;
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty });
  const say = (s: string) => process.stderr.write(`${s}\n`);
  // one generator for the whole chat: with --seed, the same conversation gives the same replies
  const rng = createRng(o.seed ?? Date.now());
  let stopReply = false;
  let generating = false;
  rl.on('SIGINT', () => { if (generating) stopReply = true; else rl.close(); });
  if (tty) say(`rwkvc chat: type a message; /help for commands`);
  rl.setPrompt('User: ');
  if (tty) rl.prompt();
  for await (const line of rl) {
    const msg = line.trim();
    try {
      if (msg.startsWith('/')) {
        if (!(await command(msg, session, say))) break;
      } else if (msg) {
        generating = true;
        stopReply = false;
        if (tty) process.stdout.write('Assistant:');
        await reply(session, msg, o, rng, (text) => process.stdout.write(text), () => stopReply);
        process.stdout.write(tty ? '\n\n' : '\n');
      }
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      say(`rwkvc: ${e.message}`);
    } finally {
      generating = false;
    }
    if (tty) rl.prompt();
  }
  rl.close();
}

/**
 * One turn: feed the user's turn, stream the reply, feed every reply token back (the stop token too), and
 * end the state on a turn boundary (`\n\n`) when the reply did not (length limit, another stop, Ctrl-C).
 */
async function reply(session: Session, msg: string, o: ChatOptions, rng: () => number,
  write: (text: string) => void, interrupted: () => boolean): Promise<void> {
  const tok = session.tokenizer!;
  const gen = new Generation(tok, {
    maxTokens: o.maxTokens, temperature: o.temperature, topP: o.topP, topK: o.topK, presencePenalty: o.presencePenalty,
    frequencyPenalty: o.frequencyPenalty, stopStrings: [TURN_END, ...(o.stop ?? [])],
  }, rng);
  let logits = await session.prefill(tok.encode(userTurn(msg)));
  const fed: number[] = [];
  while (!gen.finish && !interrupted()) {
    const s = gen.step(logits);
    if (s.text) write(s.text);
    if (s.id === END_OF_TEXT) break; // nothing to feed
    logits = await session.decode(s.id);
    fed.push(s.id);
  }
  const said = tok.decode(fed.filter((id) => tok.tokenBytes(id)));
  if (!said.includes(TURN_END)) await session.prefill(tok.encode(said.endsWith('\n') ? '\n' : TURN_END));
}

/** A slash command; false to leave the chat. */
async function command(line: string, session: Session, say: (s: string) => void): Promise<boolean> {
  const [cmd, ...rest] = line.split(/\s+/);
  const arg = rest.join(' ');
  const needFile = () => { if (!arg) throw new UserError(`${cmd}: give a file, e.g. ${cmd} chat.state`); return arg; };
  switch (cmd) {
    case '/quit': case '/exit': return false;
    case '/help': say(HELP); return true;
    case '/reset': await session.reset(); say('(conversation forgotten)'); return true;
    case '/save': {
      const f = needFile();
      checkWritable(f);
      writeFileAtomic(f, [await session.state.toBytes()]);
      say(`(state saved to ${f})`);
      return true;
    }
    case '/load': {
      const f = needFile();
      await session.state.fromBytes(readState(f), f);
      say(`(state loaded from ${f})`);
      return true;
    }
    default: throw new UserError(`${cmd}: unknown command (/help lists them)`);
  }
}

function readState(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
