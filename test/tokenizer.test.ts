import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UserError } from '../kernels/errors.ts';
import { loadWorldTokenizer, parsePythonLiteral, parseWorldVocab, type WorldTokenizer } from '../runtime/tokenizer.ts';
import { TOKENIZER_GOLDEN, VOCAB, vocabSkipReason } from './helpers/vocab.ts';

// The official vocabulary lives outside the repository (it must not be copied in): ../shared or RWKVC_VOCAB.
const vocabPath = VOCAB;
const goldenPath = TOKENIZER_GOLDEN;
const skipWhy = vocabSkipReason(true);
const haveVocab = !skipWhy;
if (skipWhy) console.warn(`tokenizer tests on the World vocabulary skipped: ${skipWhy}`);

const bytesOf = (s: string) => Array.from(new TextEncoder().encode(s));

/** A vocabulary of all 256 bytes plus `extra` str literals, as a file's text. */
function tinyVocab(extra: string[]): string {
  const lines: string[] = [];
  for (let b = 0; b < 256; b++) lines.push(`${b + 1} b'\\x${b.toString(16).padStart(2, '0')}' 1`);
  extra.forEach((lit, i) => lines.push(`${257 + i} ${lit} ${parsePythonLiteral(lit).length}`));
  return lines.join('\n') + '\n';
}

describe('Python literals', () => {
  it('decodes str literals to UTF-8 and bytes literals to bytes', () => {
    expect(Array.from(parsePythonLiteral("'abc'"))).toEqual([97, 98, 99]);
    expect(Array.from(parsePythonLiteral(`"it's"`))).toEqual(bytesOf("it's"));
    expect(Array.from(parsePythonLiteral("'\\n\\t\\r\\\\\\'\\\"'"))).toEqual(bytesOf('\n\t\r\\\'"'));
    expect(Array.from(parsePythonLiteral("'\\x80'"))).toEqual([0xc2, 0x80]); // U+0080 in a str
    expect(Array.from(parsePythonLiteral("b'\\x80'"))).toEqual([0x80]); // the byte in bytes
    expect(Array.from(parsePythonLiteral("'\\u2002'"))).toEqual(bytesOf('\u2002'));
    expect(Array.from(parsePythonLiteral("'\\U0001f680'"))).toEqual(bytesOf('🚀'));
    expect(Array.from(parsePythonLiteral("'中文'"))).toEqual(bytesOf('中文'));
    expect(Array.from(parsePythonLiteral("b'\\xe4\\xb8'"))).toEqual([0xe4, 0xb8]);
    expect(Array.from(parsePythonLiteral("'\\0\\101'"))).toEqual([0, 65]);
    expect(Array.from(parsePythonLiteral("b'\\u12'"))).toEqual(bytesOf('\\u12')); // no \u in bytes
    expect(Array.from(parsePythonLiteral("'\\q'"))).toEqual(bytesOf('\\q')); // unknown escape kept
  });

  it('rejects malformed literals', () => {
    for (const bad of ["abc", "'abc", "'a'b'", "'\\x4'", "b'é'", "'\\ud800'", "'''x'''", "'a\\"]) {
      expect(() => parsePythonLiteral(bad), bad).toThrow();
    }
  });
});

describe('vocabulary file errors', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rwkvc-vocab-'));
  const write = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('names the file and line when the byte length is wrong', () => {
    const p = write('len.txt', tinyVocab(["'ab'"]).replace("'ab' 2", "'ab' 3"));
    expect(() => loadWorldTokenizer(p)).toThrow(UserError);
    expect(() => loadWorldTokenizer(p)).toThrow(`${p}: line 257: token 257 has 2 bytes but the line says 3`);
  });

  it('rejects a bad literal, a duplicate id, a missing file, and a vocabulary missing a byte', () => {
    expect(() => loadWorldTokenizer(write('lit.txt', tinyVocab([]) + "257 'ab 2\n"))).toThrow(/line 257: unterminated/);
    expect(() => loadWorldTokenizer(write('dup.txt', tinyVocab([]) + "5 'zz' 2\n"))).toThrow(/line 257: duplicate token id 5/);
    expect(() => loadWorldTokenizer(path.join(dir, 'absent.txt'))).toThrow(UserError);
    const noByte = tinyVocab([]).split('\n').filter((l) => !l.startsWith('66 ')).join('\n');
    expect(() => parseWorldVocab(noByte, 'v.txt')).toThrow('v.txt: no single-byte token for byte 0x41');
  });

  it('encodes greedily and reports unknown ids', () => {
    const tk = parseWorldVocab(tinyVocab(["'ab'", "'abc'", "'bcd'"]));
    // Greedy, not optimal: 'abc' then 'd', although 'a' + 'bcd' would also cover it.
    expect(tk.encode('abcd')).toEqual([258, 101]);
    expect(tk.encode('abx')).toEqual([257, 121]);
    expect(tk.decode([258, 0, 101])).toBe('abcd'); // end-of-text decodes to nothing
    expect(() => tk.decode([999])).toThrow(UserError);
    expect(() => tk.createStreamDecoder().push(-1)).toThrow(UserError);
  });
});

describe.skipIf(!haveVocab)(`World tokenizer (official vocabulary)${skipWhy ? ` (skipped: ${skipWhy})` : ''}`, () => {
  let tk: WorldTokenizer;
  const tokenizer = () => (tk ??= loadWorldTokenizer(vocabPath));

  it('loads the vocabulary', () => {
    const t0 = performance.now();
    expect(tokenizer().vocabSize).toBe(65530);
    console.log(`vocabulary loaded in ${(performance.now() - t0).toFixed(0)} ms`);
  });

  it('matches the official tokenizer on every golden case', () => {
    const golden = JSON.parse(readFileSync(goldenPath, 'utf8')) as { cases: { text: string; ids: number[] }[] };
    expect(golden.cases.length).toBeGreaterThan(0);
    for (const { text, ids } of golden.cases) {
      expect(tokenizer().encode(text), JSON.stringify(text)).toEqual(ids);
      expect(tokenizer().decode(ids)).toBe(text);
    }
  });

  it('maps single bytes to ids 1..256', () => {
    for (let b = 0; b < 256; b++) expect(tokenizer().encodeBytes(Uint8Array.of(b))).toEqual([b + 1]);
  });

  it('round-trips scripts, emoji, control bytes and long runs of whitespace', () => {
    const texts = [
      '日本語のテキストと中文文本，한국어 텍스트',
      'مرحبا بالعالم، هذا نص عربي',
      'नमस्ते दुनिया, यह हिंदी पाठ है',
      '👨‍👩‍👧‍👦 🏳️‍🌈 🚀🔥 e\u0301 🇯🇵',
      '\x00\x01\x07\x1b[31mred\x1b[0m\x7f\t\r\n',
      ' '.repeat(1000),
      '\n'.repeat(777),
      '\r\n'.repeat(100) + '\t'.repeat(50) + ' \n'.repeat(200),
      '\u{10ffff}\u{fffd}\u{feff}\u2028',
    ];
    for (const t of texts) expect(tokenizer().decode(tokenizer().encode(t))).toBe(t);
    // A long run of spaces uses the 128-space token, not 1000 single bytes.
    expect(tokenizer().encode(' '.repeat(1000)).length).toBeLessThan(20);
  });

  it('decodes invalid UTF-8 with replacement characters', () => {
    expect(tokenizer().decode([0xff + 1, 'a'.charCodeAt(0) + 1])).toBe('\ufffda');
    expect(Array.from(tokenizer().decodeBytes([0xe4 + 1]))).toEqual([0xe4]);
  });

  it('streams multi-byte characters split across tokens', () => {
    const text = 'a🚀b中文🔥🔥 é' + '𝔘𝔫𝔦𝔠𝔬𝔡𝔢';
    // One token per byte splits every multi-byte character.
    const ids = Array.from(new TextEncoder().encode(text), (b) => b + 1);
    const dec = tokenizer().createStreamDecoder();
    const pieces = ids.map((id) => dec.push(id));
    expect(pieces.join('') + dec.flush()).toBe(text);
    expect(pieces.every((p) => !p.includes('\ufffd'))).toBe(true);
    expect(pieces[1]).toBe(''); // first byte of the rocket: held back
    expect(pieces[4]).toBe('🚀');
    // With real tokens too: emoji are split over several byte-level tokens.
    const real = tokenizer().encode('emoji 🚀🔥 mixed');
    const d2 = tokenizer().createStreamDecoder();
    expect(real.map((id) => d2.push(id)).join('') + d2.flush()).toBe('emoji 🚀🔥 mixed');
    // An incomplete sequence at the end is replaced on flush.
    const d3 = tokenizer().createStreamDecoder();
    expect(d3.push(0xf0 + 1)).toBe('');
    expect(d3.flush()).toBe('\ufffd');
  });

  it('encodes 1 MB of mixed text quickly', () => {
    const chunk = 'The quick brown fox 跳过了懒狗。 Привет, мир! مرحبا 🚀\n\tfunction f(x) { return x * 2; }\n   ';
    const text = chunk.repeat(Math.ceil(1_000_000 / new TextEncoder().encode(chunk).length));
    tokenizer().encode(chunk); // warm up
    const t0 = performance.now();
    const ids = tokenizer().encode(text);
    const ms = performance.now() - t0;
    console.log(`encoded ${new TextEncoder().encode(text).length} bytes into ${ids.length} tokens in ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(5000); // a hang guard, not a benchmark
    expect(tokenizer().decode(ids)).toBe(text);
  });

  it('property: decode(encode(s)) === s for any Unicode string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => tokenizer().decode(tokenizer().encode(s)) === s),
      { numRuns: 1000 },
    );
  });

  it('property: each token is the longest vocabulary entry prefixing the remaining bytes', () => {
    // An independent check of the trie: a plain map from byte strings to ids.
    const byBytes = new Map<string, number>();
    let maxLen = 0;
    for (let id = 1; id < tokenizer().vocabSize; id++) {
      const b = tokenizer().tokenBytes(id);
      if (!b) continue;
      byBytes.set(Buffer.from(b).toString('latin1'), id);
      maxLen = Math.max(maxLen, b.length);
    }
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 100 }),
      fc.string({ unit: fc.constantFrom('the', ' ', 'ing', '\n', '中', '文', 'é', '🚀', 'a', 'tion', '  '), maxLength: 60 }),
    );
    fc.assert(
      fc.property(text, (s) => {
        const bytes = Buffer.from(s, 'utf8');
        let at = 0;
        for (const id of tokenizer().encode(s)) {
          let longest = 0;
          for (let len = Math.min(maxLen, bytes.length - at); len > 0; len--) {
            if (byBytes.has(bytes.toString('latin1', at, at + len))) {
              longest = len;
              break;
            }
          }
          const tb = tokenizer().tokenBytes(id)!;
          if (tb.length !== longest || Buffer.compare(Buffer.from(tb), bytes.subarray(at, at + longest)) !== 0) return false;
          at += longest;
        }
        return at === bytes.length;
      }),
      { numRuns: 500 },
    );
  });
});
