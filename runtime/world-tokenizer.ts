/**
 * The RWKV World tokenizer (rwkv_vocab_v20230424): greedy longest match over UTF-8 bytes.
 *
 * The vocabulary file has one token a line: `<id> <python literal> <byte length>`, the literal a Python
 * `'str'` (its UTF-8 bytes) or `b'bytes'`. Id 0 is end-of-text and is not in the file; it decodes to
 * nothing. Encoding walks a byte trie from each position and takes the longest token that matches,
 * exactly like the official TRIE_TOKENIZER, so the ids agree with it token for token.
 *
 * Portable (Node and browsers): build one from the file's text with `parseWorldVocab`; Node code reads
 * the file with `loadWorldTokenizer` (tokenizer.ts).
 */
import { UserError, inputError } from '../kernels/errors.ts';

/** The end-of-text token: never produced by `encode`, decodes to the empty string. */
export const END_OF_TEXT = 0;

export interface StreamDecoder {
  /** Text completed by this token; an incomplete UTF-8 sequence at the end is held back. */
  push(id: number): string;
  /** Whatever is held back, with an incomplete sequence replaced by U+FFFD; resets the decoder. */
  flush(): string;
}

export class WorldTokenizer {
  /** One more than the largest id in the vocabulary (the model's vocabulary may be padded further). */
  readonly vocabSize: number;

  // Token bytes, all concatenated: id i is bytes[start[i] .. start[i+1]); start[i] = -1 for unknown ids.
  private readonly bytes: Uint8Array;
  private readonly start: Int32Array;
  private readonly end: Int32Array;

  // The trie. Node 0 is the root; tokenAt[node] is the id ending there or -1. Edges live in an
  // open-addressed hash keyed by node*256+byte: flat typed arrays, no object per node, one probe or two
  // per byte. The root's 256 children are also in a direct table since every step starts there.
  private readonly tokenAt: Int32Array;
  private readonly rootChild: Int32Array;
  private readonly edgeKey: Int32Array;
  private readonly edgeChild: Int32Array;
  private readonly edgeMask: number;

  constructor(tokens: ReadonlyMap<number, Uint8Array>, source = 'vocabulary') {
    let maxId = 0;
    let total = 0;
    for (const [id, b] of tokens) {
      maxId = Math.max(maxId, id);
      total += b.length;
    }
    this.vocabSize = maxId + 1;
    this.bytes = new Uint8Array(total);
    this.start = new Int32Array(this.vocabSize).fill(-1);
    this.end = new Int32Array(this.vocabSize).fill(-1);

    // A trie has at most one node per stored byte, plus the root.
    const maxNodes = total + 1;
    if (maxNodes >= 1 << 23) throw inputError(source, undefined, `vocabulary too large (${total} bytes)`);
    this.tokenAt = new Int32Array(maxNodes).fill(-1);
    this.rootChild = new Int32Array(256).fill(-1);
    let cap = 1024;
    while (cap < 2 * maxNodes) cap *= 2;
    this.edgeKey = new Int32Array(cap).fill(-1);
    this.edgeChild = new Int32Array(cap);
    this.edgeMask = cap - 1;

    let nodes = 1;
    let at = 0;
    for (const [id, b] of tokens) {
      if (b.length === 0) throw inputError(source, `token ${id}`, 'empty token');
      this.bytes.set(b, at);
      this.start[id] = at;
      this.end[id] = at + b.length;
      at += b.length;
      let node = 0;
      for (const byte of b) {
        let next = this.child(node, byte);
        if (next < 0) {
          next = nodes++;
          this.addChild(node, byte, next);
        }
        node = next;
      }
      if (this.tokenAt[node] >= 0) {
        throw inputError(source, `token ${id}`, `same bytes as token ${this.tokenAt[node]}`);
      }
      this.tokenAt[node] = id;
    }
    // Every byte must be a token by itself, or some input could not be encoded at all.
    for (let b = 0; b < 256; b++) {
      const n = this.rootChild[b];
      if (n < 0 || this.tokenAt[n] < 0) {
        throw inputError(source, undefined, `no single-byte token for byte 0x${b.toString(16).padStart(2, '0')}`);
      }
    }
  }

  private slot(key: number): number {
    return (Math.imul(key, 0x9e3779b1) >>> 0) & this.edgeMask;
  }

  private addChild(node: number, byte: number, child: number): void {
    if (node === 0) this.rootChild[byte] = child;
    const key = node * 256 + byte;
    let s = this.slot(key);
    while (this.edgeKey[s] !== -1) s = (s + 1) & this.edgeMask;
    this.edgeKey[s] = key;
    this.edgeChild[s] = child;
  }

  /** The child of `node` along `byte`, or -1. */
  private child(node: number, byte: number): number {
    if (node === 0) return this.rootChild[byte];
    const key = node * 256 + byte;
    for (let s = this.slot(key); ; s = (s + 1) & this.edgeMask) {
      const k = this.edgeKey[s];
      if (k === key) return this.edgeChild[s];
      if (k === -1) return -1;
    }
  }

  encode(text: string): number[] {
    // TextEncoder turns a lone surrogate into U+FFFD, as any UTF-8 writer must.
    return this.encodeBytes(new TextEncoder().encode(text));
  }

  encodeBytes(bytes: Uint8Array): number[] {
    const out: number[] = [];
    const n = bytes.length;
    let i = 0;
    while (i < n) {
      // Every single byte is a token (checked at load), so the first step always finds one.
      let node = 0;
      let best = -1;
      let bestEnd = i + 1;
      for (let j = i; j < n; j++) {
        node = this.child(node, bytes[j]);
        if (node < 0) break;
        const t = this.tokenAt[node];
        if (t >= 0) {
          best = t;
          bestEnd = j + 1;
        }
      }
      out.push(best);
      i = bestEnd;
    }
    return out;
  }

  /** The bytes of one token (empty for end-of-text), or undefined when the id is not in the vocabulary. */
  tokenBytes(id: number): Uint8Array | undefined {
    if (id === END_OF_TEXT) return new Uint8Array(0);
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.start[id] < 0) return undefined;
    return this.bytes.subarray(this.start[id], this.end[id]);
  }

  private bytesOf(id: number): Uint8Array {
    const b = this.tokenBytes(id);
    if (!b) throw new UserError(`tokenizer: unknown token id ${id} (vocabulary has ids 0..${this.vocabSize - 1})`);
    return b;
  }

  decodeBytes(ids: readonly number[]): Uint8Array {
    const parts = ids.map((id) => this.bytesOf(id));
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Token bytes concatenated and read as UTF-8; invalid sequences become U+FFFD. */
  decode(ids: readonly number[]): string {
    return new TextDecoder('utf-8').decode(this.decodeBytes(ids));
  }

  /** For generation: a multi-byte character split across tokens (emoji often are) comes out whole. */
  createStreamDecoder(): StreamDecoder {
    // TextDecoder in stream mode already keeps an incomplete trailing sequence for the next call.
    const dec = new TextDecoder('utf-8');
    return {
      push: (id) => dec.decode(this.bytesOf(id), { stream: true }),
      flush: () => dec.decode(),
    };
  }
}

/** A tokenizer from the vocabulary file's text (see the module comment); `source` names it in errors. */
export function parseWorldVocab(text: string, source = 'vocabulary'): WorldTokenizer {
  const tokens = new Map<number, Uint8Array>();
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    if (line.trim() === '') continue;
    const where = `line ${n + 1}`;
    // Like the official loader: the id ends at the first space, the length starts after the last,
    // so a literal may itself contain spaces.
    const first = line.indexOf(' ');
    const last = line.lastIndexOf(' ');
    if (first < 0 || last <= first) throw inputError(source, where, 'expected `<id> <literal> <byte length>`');
    const idText = line.slice(0, first);
    const lenText = line.slice(last + 1);
    if (!/^\d+$/.test(idText)) throw inputError(source, where, `bad token id '${idText}'`);
    if (!/^\d+$/.test(lenText)) throw inputError(source, where, `bad byte length '${lenText}'`);
    const id = Number(idText);
    if (id === END_OF_TEXT) throw inputError(source, where, 'id 0 is reserved for end-of-text');
    if (id >= 1 << 24) throw inputError(source, where, `token id ${id} too large`);
    if (tokens.has(id)) throw inputError(source, where, `duplicate token id ${id}`);
    let bytes: Uint8Array;
    try {
      bytes = parsePythonLiteral(line.slice(first + 1, last));
    } catch (e) {
      if (e instanceof LiteralError) throw inputError(source, where, e.message);
      throw e;
    }
    if (bytes.length !== Number(lenText)) {
      throw inputError(source, where, `token ${id} has ${bytes.length} bytes but the line says ${lenText}`);
    }
    tokens.set(id, bytes);
  }
  if (tokens.size === 0) throw inputError(source, undefined, 'no tokens');
  return new WorldTokenizer(tokens, source);
}

class LiteralError extends Error {}

const SIMPLE_ESCAPES: Record<string, number> = {
  '\\': 0x5c, "'": 0x27, '"': 0x22, a: 0x07, b: 0x08, f: 0x0c, n: 0x0a, r: 0x0d, t: 0x09, v: 0x0b,
};

/**
 * The bytes of a Python string or bytes literal (one-line, non-raw): a str gives its UTF-8 encoding, a
 * bytes literal its bytes. Escapes follow Python: \\ \' \" \a \b \f \n \r \t \v, octal \ooo, \xhh, and in
 * a str only \uXXXX and \UXXXXXXXX; an unknown escape keeps its backslash, as Python does.
 */
export function parsePythonLiteral(src: string): Uint8Array {
  let i = 0;
  let isBytes = false;
  if (src[0] === 'b' || src[0] === 'B') {
    isBytes = true;
    i = 1;
  } else if (src[0] === 'u' || src[0] === 'U') {
    i = 1;
  }
  const quote = src[i];
  if (quote !== "'" && quote !== '"') throw new LiteralError(`expected a Python string literal, got ${src}`);
  if (src.length < i + 2 || src[src.length - 1] !== quote) throw new LiteralError(`unterminated literal ${src}`);
  const body = src.slice(i + 1, -1);
  if (body.startsWith(quote + quote)) throw new LiteralError(`triple-quoted literals are not supported: ${src}`);

  // Most lines have no escapes: a str is then just its UTF-8 encoding.
  if (!isBytes && !body.includes('\\')) {
    if (body.includes(quote)) throw new LiteralError(`unescaped quote inside ${src}`);
    // ASCII is copied by hand: TextEncoder's per-call cost dominates for 65k tiny strings.
    const ascii = new Uint8Array(body.length);
    for (let j = 0; j < body.length; j++) {
      const c = body.charCodeAt(j);
      if (c > 0x7f) {
        if (/[\uD800-\uDFFF]/u.test(body)) throw new LiteralError(`lone surrogate in ${src}`);
        return utf8.encode(body);
      }
      ascii[j] = c;
    }
    return ascii;
  }

  const out: number[] = [];
  // A str escape or character yields a code point (written as UTF-8); a bytes escape yields one byte.
  const codePoint = (cp: number): void => {
    if (isBytes) {
      if (cp > 0x7f) throw new LiteralError(`bytes literal may hold only ASCII characters: ${src}`);
      out.push(cp);
    } else {
      if (cp >= 0xd800 && cp <= 0xdfff) throw new LiteralError(`surrogate U+${cp.toString(16)} cannot be UTF-8 encoded`);
      if (cp > 0x10ffff) throw new LiteralError(`code point ${cp.toString(16)} out of range`);
      pushUtf8(out, cp);
    }
  };
  const hex = (at: number, digits: number): number => {
    const h = body.slice(at, at + digits);
    if (h.length !== digits || !/^[0-9a-fA-F]+$/.test(h)) throw new LiteralError(`bad \\x/\\u escape in ${src}`);
    return parseInt(h, 16);
  };

  let k = 0;
  while (k < body.length) {
    const c = body.codePointAt(k)!;
    const ch = String.fromCodePoint(c);
    if (ch === quote) throw new LiteralError(`unescaped quote inside ${src}`);
    if (ch !== '\\') {
      codePoint(c);
      k += ch.length;
      continue;
    }
    const e = body[k + 1];
    if (e === undefined) throw new LiteralError(`dangling backslash in ${src}`);
    k += 2;
    if (e in SIMPLE_ESCAPES) {
      const v = SIMPLE_ESCAPES[e];
      if (isBytes) out.push(v);
      else codePoint(v);
    } else if (e >= '0' && e <= '7') {
      let digits = e;
      while (digits.length < 3 && body[k] >= '0' && body[k] <= '7') digits += body[k++];
      const v = parseInt(digits, 8);
      if (isBytes) {
        if (v > 0xff) throw new LiteralError(`octal escape out of range in ${src}`);
        out.push(v);
      } else codePoint(v);
    } else if (e === 'x') {
      const v = hex(k, 2);
      k += 2;
      if (isBytes) out.push(v);
      else codePoint(v); // in a str, '\x80' is U+0080: two UTF-8 bytes
    } else if (!isBytes && (e === 'u' || e === 'U')) {
      const n = e === 'u' ? 4 : 8;
      codePoint(hex(k, n));
      k += n;
    } else if (!isBytes && e === 'N') {
      throw new LiteralError(`\\N{...} escapes are not supported: ${src}`);
    } else {
      // Python keeps unrecognised escapes verbatim (with a warning).
      codePoint(0x5c);
      k -= 1;
    }
  }
  return Uint8Array.from(out);
}

const utf8 = new TextEncoder();

function pushUtf8(out: number[], cp: number): void {
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
}

/** The same from the file's bytes (a fetched file, a browser File): must be UTF-8. */
export function parseWorldVocabBytes(bytes: Uint8Array, source = 'vocabulary'): WorldTokenizer {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw inputError(source, undefined, 'not valid UTF-8');
  }
  return parseWorldVocab(text, source);
}
