/**
 * The official World vocabulary for the tests that need it. It is not in the repository (it must not be
 * copied in): by default it is read from ../shared/fixtures beside the clone; elsewhere point
 * RWKVC_VOCAB at rwkv_vocab_v20230424.txt (and RWKVC_TOKENIZER_GOLDEN at tokenizer-golden.json, which is
 * otherwise looked for beside the vocabulary). Tests skip, saying which path they looked at, when absent.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const SHARED = resolve(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures');

export function vocabPaths(env: NodeJS.ProcessEnv = process.env): { vocab: string; golden: string } {
  const vocab = env.RWKVC_VOCAB ? resolve(env.RWKVC_VOCAB) : join(SHARED, 'rwkv_vocab_v20230424.txt');
  const golden = env.RWKVC_TOKENIZER_GOLDEN ? resolve(env.RWKVC_TOKENIZER_GOLDEN) : join(dirname(vocab), 'tokenizer-golden.json');
  return { vocab, golden };
}

export const { vocab: VOCAB, golden: TOKENIZER_GOLDEN } = vocabPaths();
export const HAVE_VOCAB = existsSync(VOCAB);
export const HAVE_TOKENIZER_GOLDEN = HAVE_VOCAB && existsSync(TOKENIZER_GOLDEN);

/** Why vocabulary tests skip (null when they run): the paths looked at and the variables to set. */
export function vocabSkipReason(needGolden = false): string | null {
  if (!HAVE_VOCAB) return `no World vocabulary at ${VOCAB} (set RWKVC_VOCAB=/path/to/rwkv_vocab_v20230424.txt)`;
  if (needGolden && !HAVE_TOKENIZER_GOLDEN) return `no ${TOKENIZER_GOLDEN} (set RWKVC_TOKENIZER_GOLDEN)`;
  return null;
}
