/**
 * `rwkvc chat` driven through a pipe: the first reply is what `rwkvc run` prints for the same turn; every
 * later reply equals a fresh model fed the whole transcript at once (so the state carried between turns,
 * which fed only each new turn, is right); /save + /load and /reset round-trip; a bad /load is one line
 * and the chat goes on.
 *
 * The model: the finch-tiny fixture's shape with seeded random weights and the World vocabulary's 65536
 * rows (the fixture itself has 256 rows, too few for World-tokenized text).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { load } from '../driver/load.ts';
import { userTurn } from '../driver/serve/chat-format.ts';
import { PRESETS } from '../runtime/presets.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import type { Session } from '../runtime/session.ts';

const VOCAB = process.env.RWKVC_VOCAB ?? join(import.meta.dirname, '..', '..', 'shared', 'fixtures', 'rwkv_vocab_v20230424.txt');
const haveVocab = existsSync(VOCAB);
if (!haveVocab) console.warn(`chat.test.ts skipped: no World vocabulary at ${VOCAB} (set RWKVC_VOCAB)`);

const MAX = 10;
let tmp: string, modelPath: string, ref: Session;
let cli: Promise<Awaited<ReturnType<typeof rwkvc>>[]>;
const script = () => ['Hello there', 'What is two plus two?', `/save ${join(tmp, 'chat.state')}`, 'And three?', `/load ${join(tmp, 'chat.state')}`,
  'And three?', '/reset', 'Hello there', `/load ${join(tmp, 'missing.state')}`, '/quit', 'never read'];
const common = () => ['--model', modelPath, '--vocab', VOCAB, '--temperature', '0', '--max-tokens', String(MAX), '--threads', '1'];

function rwkvc(args: string[], stdin = ''): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('node', ['bin/rwkvc.js', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
    p.stdin.end(stdin);
  });
}

/**
 * The replies to `turns` without carried state: for each turn a fresh session is fed the whole token
 * history so far in one prefill (the user turns, each reply's tokens, the `\n\n` that closes a reply
 * when the model did not), then generates at temperature 0.
 */
async function transcriptReplies(turns: string[]): Promise<string[]> {
  const tok = ref.tokenizer!;
  const history: number[] = [];
  const replies: string[] = [];
  for (const t of turns) {
    history.push(...tok.encode(userTurn(t)));
    const s = await ref.fork();
    await s.reset();
    const ids: number[] = [];
    let text = '';
    for await (const piece of s.generate(history, { temperature: 0, maxTokens: MAX, stopStrings: ['\n\n'], onToken: (id) => ids.push(id) })) text += piece;
    replies.push(text);
    const fed = ids.filter((id) => id !== 0);
    history.push(...fed);
    const said = tok.decode(fed);
    if (!said.includes('\n\n')) history.push(...tok.encode(said.endsWith('\n') ? '\n' : '\n\n'));
  }
  return replies;
}

describe.skipIf(!haveVocab)('rwkvc chat', () => {
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'rwkvc-chat-'));
    modelPath = join(tmp, 'tiny-world.safetensors');
    writeRandomModel(modelPath, { ...PRESETS['finch-tiny'], vocabSize: 65536 }, 11, 'f32');
    // the two commands run while this process loads its own copy for the references
    cli = Promise.all([rwkvc(['chat', ...common()], script().map((l) => `${l}\n`).join('')),
      rwkvc(['run', ...common(), '--prompt', userTurn('Hello there'), '--stop', '\n\n'])]);
    ref = await load(modelPath, { target: 'wasm', threads: 1, vocab: VOCAB });
  }, 120_000);

  afterAll(() => {
    ref?.model.dispose();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('carries the state between turns; /save + /load and /reset round-trip; the first reply is rwkvc run\'s', async () => {
    const [chat, run] = await cli;
    expect(chat.status, chat.stderr).toBe(0);
    expect(run.status, run.stderr).toBe(0);
    const [r1, r2, r3] = await transcriptReplies(['Hello there', 'What is two plus two?', 'And three?']);
    expect(run.stdout).toBe(`${r1}\n`);
    // turns: hello, two plus two, three, (load) three again, (reset) hello again
    expect(chat.stdout).toBe([r1, r2, r3, r3, r1].map((r) => `${r}\n`).join(''));
    expect(r2).not.toBe((await transcriptReplies(['What is two plus two?']))[0]); // the first turn does matter
    expect(chat.stderr).toMatch(/\(state saved to .*chat\.state\)/);
    expect(chat.stderr).toMatch(/\(state loaded from .*chat\.state\)/);
    expect(chat.stderr).toMatch(/\(conversation forgotten\)/);
    expect(chat.stderr).toMatch(/rwkvc: .*missing\.state: cannot read: ENOENT/);
  }, 120_000);
});
