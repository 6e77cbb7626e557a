/**
 * Property tests: whatever bytes a checkpoint holds, the readers either read it (consistently) or throw a
 * one-line UserError naming the file; never another exception, never a hang.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../kernels/errors.ts';
import { inferConfig, openCheckpoint, openCheckpointBytes, validateCheckpoint, writeSafetensors, type Checkpoint } from '../runtime/checkpoint/index.ts';
import { DTYPE_BYTES } from '../runtime/checkpoint/dtypes.ts';
import { closeFile, openFile } from '../runtime/checkpoint/fileio.ts';
import { entryDataOffset, readZipDirectory } from '../runtime/checkpoint/zip.ts';
import { bytesSource } from '../runtime/checkpoint/source.ts';

const FIX = path.join(import.meta.dirname, 'fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rwkvc-fuzz-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
// Seeded and small by default, so the suite is fast and the same everywhere. `npm run fuzz` (FUZZ_RUNS=2000)
// runs each property that many times for a long hunt; FUZZ_SEED picks another sequence.
const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const SEED = Number(process.env.FUZZ_SEED ?? 17);
const runs = (n: number) => ({ numRuns: Math.max(1, Math.round((n * FUZZ_RUNS) / 60)), seed: SEED });
const RUNS = runs(60);
/** No case may take long: a hang would show as a timeout, a slow path as this bound. */
const CASE_MS = 10_000;
const MAX_MESSAGE = 1000;

/** Every refusal: a UserError, one line, bounded, naming the file first. */
function expectCleanRefusal(e: unknown, name: string): asserts e is UserError {
  if (!(e instanceof UserError)) throw e;
  expect(e.message.startsWith(`${name}: `), e.message.slice(0, 300)).toBe(true);
  expect(e.message).not.toContain('\n');
  expect(e.message.length).toBeLessThanOrEqual(MAX_MESSAGE);
}

/**
 * Open bytes in memory and read every tensor; the UserError if refused (anything else fails the test).
 * Memory stays bounded by the input: what a safetensors file hands out never adds up to more than the
 * file (its tensors may not share bytes), and every read is a range of the file.
 */
function readAllBytes(bytes: Uint8Array, name: string): UserError | undefined {
  const t0 = performance.now();
  let c: Checkpoint | undefined;
  try {
    c = openCheckpointBytes(name, bytes);
    let total = 0;
    for (const n of c.names()) {
      const { dtype, shape } = c.info(n);
      const raw = c.readRaw(n);
      expect(raw.length).toBe(shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype]);
      total += raw.length;
      expect(c.readF32(n).length).toBe(shape.reduce((a, b) => a * b, 1));
    }
    if (c.format === 'safetensors') expect(total).toBeLessThanOrEqual(bytes.length);
    validateCheckpoint(c, inferConfig(c));
    return undefined;
  } catch (e) {
    expectCleanRefusal(e, name);
    return e;
  } finally {
    c?.close();
    expect(performance.now() - t0).toBeLessThan(CASE_MS);
  }
}

/** Read everything the file offers; return the UserError if it is refused. Any other throw fails the test. */
function readAll(p: string): UserError | undefined {
  let c: Checkpoint | undefined;
  try {
    c = openCheckpoint(p);
    for (const name of c.names()) {
      const { dtype, shape } = c.info(name);
      expect(c.readRaw(name).length).toBe(shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype]);
      expect(c.readF32(name).length).toBe(shape.reduce((a, b) => a * b, 1));
    }
    validateCheckpoint(c, inferConfig(c));
    return undefined;
  } catch (e) {
    expectCleanRefusal(e, p);
    return e;
  } finally {
    c?.close();
  }
}

function check(bytes: Uint8Array, name = 'fuzz'): UserError | undefined {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return readAll(p);
}

const flip = (src: Uint8Array, edits: { pos: number; byte: number }[]) => {
  const b = Uint8Array.from(src);
  for (const { pos, byte } of edits) b[pos] = byte;
  return b;
};
const edits = (lo: number, hi: number) =>
  fc.array(fc.record({ pos: fc.integer({ min: lo, max: hi - 1 }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 });

describe('safetensors fuzz', () => {
  const small = path.join(tmp, 'small.safetensors');
  writeSafetensors(small, [
    { name: 'a', dtype: 'f32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) },
    { name: 'b', dtype: 'bf16', shape: [3], data: Uint16Array.of(0x3f80, 0x4000, 0x7fc0) },
    { name: 'c', dtype: 'f16', shape: [1, 1, 2], data: Uint16Array.of(0x3c00, 0x0001) },
  ], { format: 'pt' });
  const S = new Uint8Array(fs.readFileSync(small));
  const headerEnd = 8 + Number(Buffer.from(S).readBigUInt64LE(0));

  it('truncation at every byte is a UserError of the right kind', () => {
    for (let len = 0; len < S.length; len++) {
      const e = check(S.subarray(0, len));
      expect(e, `truncated to ${len}`).toBeInstanceOf(UserError);
      if (len < 8) expect(e!.message).toContain('too short');
      else if (len < headerEnd) expect(e!.message).toContain('header length');
      else expect(e!.message).toContain('truncated file');
    }
  });

  it('flipped bytes anywhere, and in the JSON header', () => {
    fc.assert(fc.property(edits(0, S.length), (ed) => { check(flip(S, ed)); }), RUNS);
    fc.assert(fc.property(edits(8, headerEnd), (ed) => { check(flip(S, ed)); }), RUNS);
  });

  it('random header lengths', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (n) => {
      const b = Buffer.from(S);
      b.writeBigUInt64LE(n, 0);
      check(b);
    }), RUNS);
  });

  /** A safetensors file with an arbitrary header text and some data bytes. */
  const withHeader = (json: string, dataLen: number) => {
    const h = Buffer.from(json);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    return Buffer.concat([len, h, Buffer.alloc(dataLen, 0x3f)]);
  };

  it('random headers: random dtypes, shapes, offsets, and JSON that is not a header at all', () => {
    const entry = fc.record({
      dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I32', 'F64', 'I64', 'U8', 'BOOL', 'f32', ''), fc.anything()),
      shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 6 }), { maxLength: 4 }), fc.anything()),
      data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -1, max: 300 }), fc.integer({ min: -1, max: 300 })), fc.anything()),
    }, { requiredKeys: [] });
    const header = fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__metadata__', '__proto__', 'emb.weight')), fc.oneof(entry, fc.anything()));
    fc.assert(fc.property(header, fc.nat(400), (h, n) => { check(withHeader(JSON.stringify(h), n)); }), runs(200));
    fc.assert(fc.property(fc.oneof(fc.json(), fc.string()), fc.nat(64), (j, n) => { check(withHeader(j, n)); }), RUNS);
  });

  it('names dtype and offset problems precisely', () => {
    const msg = (h: object, n: number) => check(withHeader(JSON.stringify(h), n), 'h.safetensors')!.message;
    expect(msg({ x: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1)).toMatch(/h\.safetensors: x: unknown dtype "U8"/);
    expect(msg({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, 4)).toMatch(/x: data_offsets \[0, 4\] hold 4 bytes but shape \[2\] of F32 needs 8/);
    expect(msg({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4)).toMatch(/x: truncated file: tensor bytes end at byte/);
    expect(check(withHeader('{"x": ', 0), 'h.safetensors')!.message).toMatch(/h\.safetensors: bad header JSON/);
  });
});

describe('.pth fuzz', () => {
  const src = path.join(FIX, 'finch-tiny-bf16', 'model.pth');
  const P = new Uint8Array(fs.readFileSync(src));
  // Where the structures are, so that mutations hit them often, not just tensor data.
  const f = openFile(src);
  const entries = [...readZipDirectory(f).values()];
  const pkl = entries.find((e) => e.name.endsWith('data.pkl'))!;
  const pklStart = entryDataOffset(f, pkl), pklEnd = pklStart + pkl.size;
  const cdStart = Math.max(...entries.map((e) => entryDataOffset(f, e) + e.size));
  closeFile(f);
  const localHeaders = entries.map((e) => e.localHeaderOffset);
  // The central directory record of data.pkl, whose CRC-32 a pickle splice rewrites: a hostile file has
  // a valid CRC, and the pickle parser (not the checksum) must be what refuses it.
  const pklCentral = Buffer.from(P).indexOf(Buffer.concat([Buffer.from('PK\x01\x02', 'latin1')]), cdStart);
  const pklCrcAt = (() => {
    for (let at = pklCentral; at >= 0; at = Buffer.from(P).indexOf('PK\x01\x02', at + 1, 'latin1')) {
      const n = Buffer.from(P).readUInt16LE(at + 28);
      if (Buffer.from(P.subarray(at + 46, at + 46 + n)).toString() === pkl.name) return at + 16;
    }
    throw new Error('no central directory record for data.pkl');
  })();
  const withPklCrc = (b: Uint8Array) => {
    Buffer.from(b.buffer, b.byteOffset, b.length).writeUInt32LE(zlib.crc32(b.subarray(pklStart, pklEnd)), pklCrcAt);
    return b;
  };
  const structural = fc.oneof(
    fc.integer({ min: cdStart, max: P.length - 1 }), // central directory and EOCD
    fc.integer({ min: pklStart, max: pklEnd - 1 }), // the pickle
    fc.constantFrom(...localHeaders).chain((h) => fc.integer({ min: h, max: h + 40 })), // local headers
    fc.integer({ min: 0, max: P.length - 1 }),
  );

  it('the untouched fixture reads', () => {
    expect(check(P)).toBeUndefined();
  });

  it('truncation anywhere is a UserError', () => {
    fc.assert(fc.property(structural, (len) => { expect(check(P.subarray(0, len))).toBeInstanceOf(UserError); }), RUNS);
  });

  it('flipped bytes in ZIP records, local headers and the pickle', () => {
    fc.assert(fc.property(fc.array(fc.record({ pos: structural, byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
      (ed) => { check(flip(P, ed)); }), runs(60));
  });

  // Pickle fragments to splice over the real pickle: dangerous globals, stack and memo abuse, bad lengths.
  const snippets = [
    'cos\nsystem\n', 'c__builtin__\neval\n', '\x8c\x02os\x8c\x06system\x93', 'R', 'RRRR', '(', 't', 'u', 's', 'Q', 'b',
    'h\xc8', 'j\xff\xff\xff\x00', '.', '\x8a\xff', 'X\xff\xff\xff\x7f', '\x8d\xff\xff\xff\xff\xff\xff\xff\xff',
    ')(tttt', 'ctorch\nFloatStorage\n', 'ccollections\nOrderedDict\n)R', '\x95\x00\x00\x00', 'i', '\x00', '\xff',
  ].map((s) => Buffer.from(s, 'latin1'));

  it('spliced pickle opcodes and globals', () => {
    fc.assert(fc.property(fc.integer({ min: pklStart, max: pklEnd - 1 }), fc.constantFrom(...snippets), (at, s) => {
      const b = Uint8Array.from(P);
      b.set(s.subarray(0, pklEnd - at), at);
      check(withPklCrc(b));
    }), runs(60));
  });

  it('a GLOBAL os.system right after PROTO is refused by name', () => {
    fc.assert(fc.property(fc.constantFrom(...snippets.slice(0, 3)), (s) => {
      const b = Uint8Array.from(P);
      b.set(s, pklStart + 2);
      expect(check(withPklCrc(b))!.message).toMatch(/data\.pkl: refusing pickle global (os\.system|__builtin__\.eval)/);
    }), runs(10));
  });
});

// ---------- the finch-tiny fixtures, mutated in memory: bit flips, truncations, header and pickle edits ----------

const flipBits = (src: Uint8Array, bits: number[]) => {
  const b = Uint8Array.from(src);
  for (const bit of bits) b[bit >> 3]! ^= 1 << (bit & 7);
  return b;
};

describe('fuzz finch-tiny/model.safetensors', () => {
  const name = 'model.safetensors';
  const S = new Uint8Array(fs.readFileSync(path.join(FIX, 'finch-tiny', name)));
  const headerLen = Number(Buffer.from(S).readBigUInt64LE(0));
  const header = JSON.parse(Buffer.from(S.subarray(8, 8 + headerLen)).toString()) as Record<string, Record<string, unknown>>;
  const data = S.subarray(8 + headerLen);
  const tensorNames = Object.keys(header).filter((k) => k !== '__metadata__');
  /** The fixture with another header (its JSON text given); `DEEP<n>` in it becomes n-deep nesting. */
  const withHeader = (json: string) => {
    const text = json.replace(/"DEEP(\d+)"/g, (_, n) => '['.repeat(+n) + ']'.repeat(+n));
    const h = Buffer.from(text);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    return new Uint8Array(Buffer.concat([len, h, data]));
  };

  it('the untouched fixture reads', () => {
    expect(readAllBytes(S, name)).toBeUndefined();
  });

  it('bit flips anywhere, and in the header', () => {
    fc.assert(fc.property(fc.array(fc.nat(S.length * 8 - 1), { minLength: 1, maxLength: 8 }), (bits) => { readAllBytes(flipBits(S, bits), name); }), RUNS);
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: (8 + headerLen) * 8 - 1 }), { minLength: 1, maxLength: 8 }),
      (bits) => { readAllBytes(flipBits(S, bits), name); }), RUNS);
  });

  it('truncations are refused', () => {
    fc.assert(fc.property(fc.oneof(fc.nat(8 + headerLen + 16), fc.nat(S.length - 1)), (len) => {
      expect(readAllBytes(S.subarray(0, len), name)).toBeInstanceOf(UserError);
    }), RUNS);
  });

  const field = fc.constantFrom('dtype', 'shape', 'data_offsets');
  const hostile = fc.oneof(
    fc.anything({ maxDepth: 4 }),
    fc.nat({ max: 30_000 }).map((n) => `DEEP${n}`), // nested far past the header's depth bound (or not)
    fc.constantFrom('F32', 'BF16', 'F16', 'U8', 'I64'),
    fc.nat({ max: 2_000_000 }).map((n) => 'x'.repeat(n)),
    fc.array(fc.integer({ min: -2, max: 300 }), { maxLength: 70_000 }),
  );
  /** An edit of the parsed header: a field set to something hostile, aliasing, shifts, deletions, renames. */
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), t: fc.constantFrom(...tensorNames), field, value: hostile }),
    fc.record({ kind: fc.constant('alias' as const), t: fc.constantFrom(...tensorNames), of: fc.constantFrom(...tensorNames) }),
    fc.record({ kind: fc.constant('shift' as const), t: fc.constantFrom(...tensorNames), by: fc.integer({ min: -64, max: 64 }) }),
    fc.record({ kind: fc.constant('delete' as const), t: fc.constantFrom(...tensorNames, '__metadata__') }),
    fc.record({ kind: fc.constant('rename' as const), t: fc.constantFrom(...tensorNames), to: fc.oneof(fc.string(), fc.constantFrom('rwkv.embeddings.weight', '__proto__', 'emb.weight')) }),
  );

  it('header mutations: hostile values, nesting, aliasing, shifted offsets, deletions, renames', () => {
    fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => {
      const h: Record<string, Record<string, unknown>> = structuredClone(header);
      for (const m of muts) {
        const entry = h[m.t];
        if (!entry) continue;
        if (m.kind === 'set') entry[m.field] = m.value;
        else if (m.kind === 'alias' && h[m.of]) entry.data_offsets = h[m.of]!.data_offsets;
        else if (m.kind === 'shift' && Array.isArray(entry.data_offsets)) entry.data_offsets = entry.data_offsets.map((o) => (typeof o === 'number' ? o + m.by : o));
        else if (m.kind === 'delete') delete h[m.t];
        else if (m.kind === 'rename') { delete h[m.t]; Object.defineProperty(h, m.to, { value: entry, enumerable: true, configurable: true, writable: true }); }
      }
      const e = readAllBytes(withHeader(JSON.stringify(h)), name);
      // two distinct tensors over the same bytes never load (refused as aliased, or for a size mismatch)
      const aliased = muts.some((m) => m.kind === 'alias' && m.t !== m.of && h[m.t] && h[m.of]);
      if (aliased && muts.length === 1) expect(e).toBeInstanceOf(UserError);
    }), runs(150));
  });
});

describe('fuzz finch-tiny/model.pth', () => {
  const name = 'model.pth';
  const P = new Uint8Array(fs.readFileSync(path.join(FIX, 'finch-tiny', name)));
  const src = bytesSource(name, P);
  const entries = [...readZipDirectory(src).values()];
  const spans = entries.map((e) => ({ e, start: entryDataOffset(src, e) }));
  const pkl = spans.find((x) => x.e.name.endsWith('data.pkl'))!;
  const storages = spans.filter((x) => /\/data\/\d+$/.test(x.e.name) && x.e.size > 0);
  const cdStart = Math.max(...spans.map((x) => x.start + x.e.size));
  /** Where data.pkl's CRC-32 sits in its central directory record. */
  const pklCrcAt = (() => {
    const b = Buffer.from(P);
    for (let at = b.indexOf('PK\x01\x02', cdStart, 'latin1'); at >= 0; at = b.indexOf('PK\x01\x02', at + 1, 'latin1')) {
      if (b.subarray(at + 46, at + 46 + b.readUInt16LE(at + 28)).toString() === pkl.e.name) return at + 16;
    }
    throw new Error('no central directory record for data.pkl');
  })();
  /** Give data.pkl a valid CRC-32 again, as a deliberately crafted file would have. */
  const fixPklCrc = (b: Uint8Array) => {
    Buffer.from(b.buffer, b.byteOffset, b.length).writeUInt32LE(zlib.crc32(b.subarray(pkl.start, pkl.start + pkl.e.size)), pklCrcAt);
    return b;
  };

  it('the untouched fixture reads', () => {
    expect(readAllBytes(P, name)).toBeUndefined();
  });

  it('any flipped bit in a tensor storage is refused by its CRC-32, naming the entry', () => {
    fc.assert(fc.property(fc.constantFrom(...storages), fc.nat(), ({ e, start }, r) => {
      const err = readAllBytes(flipBits(P, [start * 8 + (r % (e.size * 8))]), name);
      expect(err?.message).toContain(`${name}: ${e.name}: corrupt ZIP entry: its data has CRC-32`);
    }), RUNS);
  });

  it('bit flips anywhere, in the pickle, local headers and the central directory', () => {
    const where = fc.oneof(
      fc.nat(P.length * 8 - 1),
      fc.integer({ min: pkl.start * 8, max: (pkl.start + pkl.e.size) * 8 - 1 }),
      fc.constantFrom(...entries.map((e) => e.localHeaderOffset)).chain((h) => fc.integer({ min: h * 8, max: (h + 40) * 8 })),
      fc.integer({ min: cdStart * 8, max: P.length * 8 - 1 }),
    );
    fc.assert(fc.property(fc.array(where, { minLength: 1, maxLength: 6 }), fc.boolean(), (bits, crc) => {
      const b = flipBits(P, bits);
      readAllBytes(crc ? fixPklCrc(b) : b, name);
    }), runs(120));
  });

  it('truncations are refused', () => {
    fc.assert(fc.property(fc.oneof(fc.nat(P.length - 1), fc.integer({ min: cdStart, max: P.length - 1 })), (len) => {
      expect(readAllBytes(P.subarray(0, len), name)).toBeInstanceOf(UserError);
    }), RUNS);
  });

  // Pickle fragments written over the pickle (with a valid CRC): nesting, self-reference, huge keys, globals.
  const fragment = fc.oneof(
    fc.nat({ max: Math.floor(pkl.e.size / 2) - 2 }).map((n) => Buffer.concat([Buffer.alloc(n, ']'), Buffer.alloc(n - 1 > 0 ? n - 1 : 0, 'a')])),
    fc.nat({ max: Math.floor(pkl.e.size / 2) - 2 }).map((n) => Buffer.concat([Buffer.from('('), Buffer.alloc(n, '('), Buffer.alloc(n, 't')])),
    fc.constantFrom(']q\x00h\x00a', '}q\x01h\x01h\x01s', 'cos\nsystem\n', '\x8c\x02os\x8c\x06system\x93', 'ctorch\nload\n', '(K\x01K\x02l', 'Q', 'R', 'b', '.')
      .map((x) => Buffer.from(x, 'latin1')),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((x) => Buffer.from(x)),
  );

  it('pickle fragments: deep nesting, self-reference, globals, random opcodes', () => {
    fc.assert(fc.property(fc.nat(pkl.e.size - 1), fragment, (at, frag) => {
      const b = Uint8Array.from(P);
      b.set(frag.subarray(0, pkl.e.size - at), pkl.start + at);
      readAllBytes(fixPklCrc(b), name);
    }), runs(120));
  });
});
