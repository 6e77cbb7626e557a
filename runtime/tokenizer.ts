/**
 * The RWKV World tokenizer for Node: everything of the portable world-tokenizer.ts, plus reading the
 * vocabulary file by path. Browser code imports world-tokenizer.ts and passes the file's text or bytes.
 */
import { readFileSync } from 'node:fs';
import { inputError } from '../kernels/errors.ts';
import { parseWorldVocabBytes, type WorldTokenizer } from './world-tokenizer.ts';

export * from './world-tokenizer.ts';

/** Reads a vocabulary file (rwkv_vocab_v20230424.txt). Any defect is a UserError naming file and line. */
export function loadWorldTokenizer(vocabPath: string): WorldTokenizer {
  let raw: Uint8Array;
  try {
    raw = readFileSync(vocabPath);
  } catch (e) {
    throw inputError(vocabPath, undefined, `cannot read vocabulary (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseWorldVocabBytes(raw, vocabPath);
}
