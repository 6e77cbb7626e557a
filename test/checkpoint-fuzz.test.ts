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
import { inferConfig, openCheckpoint, validateCheckpoint, writeSafetensors, type Checkpoint } from '../runtime/checkpoint/index.ts';
import { DTYPE_BYTES } from '../runtime/checkpoint/dtypes.ts';
import { closeFile, openFile } from '../runtime/checkpoint/fileio.ts';
import { entryDataOffset, readZipDirectory } from '../runtime/checkpoint/zip.ts';

const FIX = path.join(import.meta.dirname, 'fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rwkvc-fuzz-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
// Small by default so the suite stays fast; CHECKPOINT_FUZZ_SCALE=50 for a long local hunt.
const SCALE = Number(process.env.CHECKPOINT_FUZZ_SCALE ?? 1);
const runs = (n: number) => ({ numRuns: Math.round(n * SCALE) });
const RUNS = runs(60);

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
    if (!(e instanceof UserError)) throw e;
    expect(e.message.startsWith(`${p}: `)).toBe(true);
    expect(e.message).not.toContain('\n');
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
