import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../kernels/errors.ts';
import {
  expectedTensors, hfToOfficial, inferConfig, openCheckpoint, validateCheckpoint, writeSafetensors,
  type Checkpoint, type ModelConfig, type TensorToWrite,
} from '../runtime/checkpoint/index.ts';
import { f16BitsToF32 } from '../runtime/checkpoint/dtypes.ts';
import { openFile, closeFile, readAt } from '../runtime/checkpoint/fileio.ts';
import { crc32, entryDataOffset, readZipDirectory } from '../runtime/checkpoint/zip.ts';

const FIX = path.join(import.meta.dirname, 'fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rwkvc-ckpt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const tmpFile = (name: string) => path.join(tmp, name);

function withCkpt<T>(p: string, fn: (c: Checkpoint) => T): T {
  const c = openCheckpoint(p);
  try {
    return fn(c);
  } finally {
    c.close();
  }
}

/** The UserError `fn` throws (fails the test if it throws nothing or something else). */
function userError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    expect((e as Error).message).not.toContain('\n');
    return e as UserError;
  }
  throw new Error('expected a UserError');
}

// ---------- tiny ZIP and pickle writers, to build .pth files the readers have never seen ----------

interface ZipInput { name: string; data?: Uint8Array; size?: number; method?: number; crc?: number }
/** Positioned chunks of a stored ZIP (holes are left sparse on disk), optionally in ZIP64 form. */
function buildZip(entries: ZipInput[], zip64 = false): { chunks: [number, Uint8Array][]; size: number } {
  const chunks: [number, Uint8Array][] = [];
  const central: Buffer[] = [];
  let pos = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const size = e.data?.length ?? e.size!;
    const local = Buffer.alloc(30 + name.length + (zip64 ? 20 : 0));
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(e.method ?? 0, 8);
    local.writeUInt32LE(zip64 ? 0xffffffff : size, 18);
    local.writeUInt32LE(zip64 ? 0xffffffff : size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(zip64 ? 20 : 0, 28);
    name.copy(local, 30);
    if (zip64) { local.writeUInt16LE(1, 30 + name.length); local.writeUInt16LE(16, 32 + name.length); }
    chunks.push([pos, local]);
    if (e.data) chunks.push([pos + local.length, e.data]);
    const cd = Buffer.alloc(46 + name.length + (zip64 ? 28 : 0));
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(e.method ?? 0, 10);
    cd.writeUInt32LE(e.crc ?? (e.data ? zlib.crc32(e.data) : 0), 16); // an entry without data is never read
    cd.writeUInt32LE(zip64 ? 0xffffffff : size, 20);
    cd.writeUInt32LE(zip64 ? 0xffffffff : size, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(zip64 ? 28 : 0, 30);
    cd.writeUInt32LE(zip64 ? 0xffffffff : pos, 42);
    name.copy(cd, 46);
    if (zip64) {
      const x = 46 + name.length;
      cd.writeUInt16LE(1, x); cd.writeUInt16LE(24, x + 2);
      cd.writeBigUInt64LE(BigInt(size), x + 4); cd.writeBigUInt64LE(BigInt(size), x + 12); cd.writeBigUInt64LE(BigInt(pos), x + 20);
    }
    central.push(cd);
    pos += local.length + size;
  }
  const cdBytes = Buffer.concat(central);
  const cdOffset = pos;
  chunks.push([pos, cdBytes]);
  pos += cdBytes.length;
  if (zip64) {
    const z = Buffer.alloc(56 + 20);
    z.writeUInt32LE(0x06064b50, 0);
    z.writeBigUInt64LE(44n, 4);
    z.writeBigUInt64LE(BigInt(entries.length), 24);
    z.writeBigUInt64LE(BigInt(entries.length), 32);
    z.writeBigUInt64LE(BigInt(cdBytes.length), 40);
    z.writeBigUInt64LE(BigInt(cdOffset), 48);
    z.writeUInt32LE(0x07064b50, 56);
    z.writeBigUInt64LE(BigInt(pos), 64);
    z.writeUInt32LE(1, 72);
    chunks.push([pos, z]);
    pos += z.length;
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(zip64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(zip64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : cdBytes.length, 12);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : cdOffset, 16);
  chunks.push([pos, eocd]);
  return { chunks, size: pos + 22 };
}

function writeZip(p: string, entries: ZipInput[], zip64 = false): string {
  const { chunks, size } = buildZip(entries, zip64);
  const fd = fs.openSync(p, 'w');
  for (const [at, bytes] of chunks) fs.writeSync(fd, bytes, 0, bytes.length, at);
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
  return p;
}

/** Pickle opcodes as bytes (protocol 2), enough to write a torch state dict by hand. */
const op = {
  proto: Buffer.from([0x80, 2]),
  mark: Buffer.from('('),
  tuple: Buffer.from('t'),
  emptyTuple: Buffer.from(')'),
  emptyDict: Buffer.from('}'),
  setitems: Buffer.from('u'),
  reduce: Buffer.from('R'),
  persid: Buffer.from('Q'),
  newfalse: Buffer.from([0x89]),
  stop: Buffer.from('.'),
  global: (m: string, n: string) => Buffer.from(`c${m}\n${n}\n`),
  str: (s: string) => {
    const b = Buffer.from(s);
    const h = Buffer.alloc(5);
    h[0] = 0x58;
    h.writeUInt32LE(b.length, 1);
    return Buffer.concat([h, b]);
  },
  int: (n: number) => {
    const b = Buffer.alloc(5);
    b[0] = 0x4a;
    b.writeInt32LE(n, 1);
    return b;
  },
};

interface PklTensor { name: string; storage: string; key: string; numel: number; offset: number; size: number[]; stride: number[] }
function statePickle(tensors: PklTensor[]): Buffer {
  const parts: Buffer[] = [op.proto, op.emptyDict, op.mark];
  for (const t of tensors) {
    parts.push(op.str(t.name), op.global('torch._utils', '_rebuild_tensor_v2'), op.mark);
    parts.push(op.mark, op.str('storage'), op.global('torch', t.storage), op.str(t.key), op.str('cpu'), op.int(t.numel), op.tuple, op.persid);
    parts.push(op.int(t.offset), op.mark, ...t.size.map(op.int), op.tuple, op.mark, ...t.stride.map(op.int), op.tuple);
    parts.push(op.newfalse, op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce, op.tuple, op.reduce);
  }
  parts.push(op.setitems, op.stop);
  return Buffer.concat(parts);
}

const pthWith = (name: string, pkl: Buffer, storage = new Uint8Array(16), method = 0) =>
  writeZip(tmpFile(name), [{ name: 'm/data.pkl', data: pkl, method }, { name: 'm/data/0', data: storage }]);

// ---------- the fixtures ----------

for (const dir of ['finch-tiny', 'finch-tiny-bf16']) {
  describe(`fixture ${dir}`, () => {
    const files = ['model.pth', 'model.safetensors', 'model-hf.safetensors'].map((f) => path.join(FIX, dir, f));
    const golden = JSON.parse(fs.readFileSync(path.join(FIX, dir, 'golden.json'), 'utf8'));
    const cfg: ModelConfig = {
      nLayer: golden.n_layer, nEmbd: golden.n_embd, headSize: golden.head_size, nHead: golden.n_head,
      dimFfn: golden.dim_ffn, vocabSize: golden.vocab_size, loraMix: golden.lora_mix, loraDecay: golden.lora_decay,
    };

    it('detects the format by magic bytes', () => {
      expect(files.map((f) => withCkpt(f, (c) => c.format))).toEqual(['pth', 'safetensors', 'safetensors']);
    });

    it('all three formats hold the same tensors, bit for bit, under official names', () => {
      const [pth, st, hf] = files.map((f) => openCheckpoint(f)) as [Checkpoint, Checkpoint, Checkpoint];
      try {
        const names = [...expectedTensors(cfg).keys()].sort();
        for (const c of [pth, st, hf]) expect([...c.names()].sort()).toEqual(names);
        const dtype = golden.weights_dtype === 'fp32' ? 'f32' : 'bf16';
        for (const name of names) {
          const info = pth.info(name);
          expect(info.dtype).toBe(dtype);
          expect(st.info(name)).toEqual(info);
          expect(hf.info(name)).toEqual(info);
          const raw = Buffer.from(pth.readRaw(name));
          expect(Buffer.from(st.readRaw(name)).equals(raw)).toBe(true);
          expect(Buffer.from(hf.readRaw(name)).equals(raw)).toBe(true);
          const a = pth.readF32(name), b = st.readF32(name), h = hf.readF32(name);
          expect(a.length).toBe(info.shape.reduce((x, y) => x * y, 1));
          expect(Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength))).toBe(true);
          expect(Buffer.from(h.buffer, h.byteOffset, h.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength))).toBe(true);
        }
      } finally {
        for (const c of [pth, st, hf]) c.close();
      }
    });

    it('infers the config of golden.json and validates', () => {
      for (const f of files) {
        withCkpt(f, (c) => {
          expect(inferConfig(c)).toEqual(cfg);
          validateCheckpoint(c, cfg);
        });
      }
    });

    it('widens exactly (bf16: the top 16 bits of an f32)', () => {
      withCkpt(files[1]!, (c) => {
        for (const name of c.names()) {
          const raw = c.readRaw(name), f = c.readF32(name);
          const want = c.info(name).dtype === 'bf16'
            ? Uint32Array.from(new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2), (h) => h << 16)
            : new Uint32Array(raw.buffer, raw.byteOffset, raw.length / 4);
          expect(Buffer.from(f.buffer, f.byteOffset, f.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(true);
        }
      });
    });
  });
}

describe('golden safetensors', () => {
  it('reads i32 tokens and f32 logits', () => {
    withCkpt(path.join(FIX, 'finch-tiny', 'golden.safetensors'), (c) => {
      expect(c.info('tokens')).toEqual({ name: 'tokens', dtype: 'i32', shape: [16] });
      expect(c.info('logits').shape).toEqual([16, 256]);
      const toks = c.readF32('tokens');
      expect(toks.every((t) => Number.isInteger(t) && t >= 0 && t < 256)).toBe(true);
    });
  });
});

describe('dtypes', () => {
  it('f16: every one of the 65536 bit patterns, incl. subnormals, ±0, ±inf, NaN', () => {
    const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const p = tmpFile('f16.safetensors');
    writeSafetensors(p, [{ name: 'h', dtype: 'f16', shape: [65536], data: bits }]);
    const got = withCkpt(p, (c) => c.readF32('h'));
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const s = h >> 15 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
      const want = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + m / 1024);
      if (!Object.is(got[h], want) && !(Number.isNaN(want) && Number.isNaN(got[h]))) wrong.push(h);
    }
    expect(wrong).toEqual([]);
    expect([0x0001, 0x03ff, 0x3c00, 0x7bff, 0x8000].map(f16BitsToF32)).toEqual([2 ** -24, 1023 * 2 ** -24, 1, 65504, -0]);
  });

  it('bf16 known values', () => {
    const p = tmpFile('bf16.safetensors');
    writeSafetensors(p, [{ name: 'b', dtype: 'bf16', shape: [5], data: Uint16Array.of(0x3f80, 0xc000, 0x7f80, 0xff80, 0x0001) }]);
    const got = withCkpt(p, (c) => c.readF32('b'));
    expect([...got]).toEqual([1, -2, Infinity, -Infinity, new Float32Array(new Uint32Array([0x10000]).buffer)[0]]);
  });
});

describe('safetensors writer', () => {
  it('round-trips every dtype, the metadata, and aligns the data', () => {
    const tensors: TensorToWrite[] = [
      { name: 'a.f32', dtype: 'f32', shape: [2, 3], data: Float32Array.of(1, -2.5, 3, 0, 1e-30, -7) },
      { name: 'a.f16', dtype: 'f16', shape: [2], data: Uint16Array.of(0x3c00, 0xc000) },
      { name: 'a.bf16', dtype: 'bf16', shape: [1, 2], data: Uint16Array.of(0x3f80, 0x4040) },
      { name: 'a.i32', dtype: 'i32', shape: [3], data: Int32Array.of(-1, 0, 2 ** 31 - 1) },
      { name: 'a.f64', dtype: 'f64', shape: [1], data: Float64Array.of(Math.PI) },
      { name: 'a.i64', dtype: 'i64', shape: [2], data: BigInt64Array.of(-5n, 1n << 40n) },
      { name: 'scalar', dtype: 'f32', shape: [], data: Float32Array.of(42) },
      { name: 'empty', dtype: 'f32', shape: [0, 4], data: new Float32Array(0) },
    ];
    const p = tmpFile('rt.safetensors');
    writeSafetensors(p, tensors, { format: 'pt', note: 'round trip' });
    const headerLen = Number(fs.readFileSync(p).readBigUInt64LE(0));
    expect((8 + headerLen) % 8).toBe(0);
    withCkpt(p, (c) => {
      expect(c.metadata).toEqual({ format: 'pt', note: 'round trip' });
      expect(c.names()).toEqual(tensors.map((t) => t.name));
      for (const t of tensors) {
        expect(c.info(t.name)).toEqual({ name: t.name, dtype: t.dtype, shape: t.shape });
        expect(Buffer.from(c.readRaw(t.name)).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))).toBe(true);
      }
      expect([...c.readF32('a.f16')]).toEqual([1, -2]);
      expect([...c.readF32('a.bf16')]).toEqual([1, 3]);
      expect([...c.readF32('a.i32')]).toEqual([-1, 0, 2 ** 31]);
      expect([...c.readF32('a.f64')]).toEqual([Math.fround(Math.PI)]);
      expect([...c.readF32('a.i64')]).toEqual([-5, 2 ** 40]);
      expect([...c.readF32('scalar')]).toEqual([42]);
    });
  });

  it('refuses data that does not match the shape', () => {
    const e = userError(() => writeSafetensors(tmpFile('bad.safetensors'), [{ name: 'x', dtype: 'f32', shape: [3], data: new Float32Array(2) }]));
    expect(e.message).toMatch(/bad\.safetensors: x: data has 8 bytes but shape \[3\] of f32 needs 12/);
    expect(fs.existsSync(tmpFile('bad.safetensors'))).toBe(false);
  });

  it('reads tensors lazily: a sparse 8 GiB file opens at once and small tensors come back', () => {
    const p = tmpFile('sparse.safetensors');
    const header = JSON.stringify({
      small: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      huge: { dtype: 'BF16', shape: [4, 1 << 30], data_offsets: [8, 8 + 2 ** 33] },
      // offsets past 2^26.5 each: their product is not a safe integer (a reader once multiplied them)
      after: { dtype: 'F32', shape: [2], data_offsets: [8 + 2 ** 33, 16 + 2 ** 33] },
    });
    const fd = fs.openSync(p, 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    fs.writeSync(fd, len, 0, 8, 0);
    fs.writeSync(fd, header, 8);
    fs.writeSync(fd, Buffer.from(Float32Array.of(1, 2).buffer), 0, 8, 8 + header.length);
    fs.ftruncateSync(fd, 8 + header.length + 16 + 2 ** 33);
    fs.writeSync(fd, Buffer.from(Float32Array.of(3, 4).buffer), 0, 8, 8 + header.length + 8 + 2 ** 33);
    fs.closeSync(fd);
    withCkpt(p, (c) => {
      expect(c.info('huge').shape).toEqual([4, 2 ** 30]);
      expect([...c.readF32('small')]).toEqual([1, 2]);
      expect([...c.readF32('after')]).toEqual([3, 4]);
    });
  });
});

describe('names and validation', () => {
  it('maps HF names to official ones', () => {
    expect(hfToOfficial('rwkv.embeddings.weight')).toBe('emb.weight');
    expect(hfToOfficial('rwkv.blocks.0.pre_ln.bias')).toBe('blocks.0.ln0.bias');
    expect(hfToOfficial('rwkv.blocks.3.attention.time_maa_w1')).toBe('blocks.3.att.time_maa_w1');
    expect(hfToOfficial('rwkv.blocks.3.feed_forward.key.weight')).toBe('blocks.3.ffn.key.weight');
    expect(hfToOfficial('rwkv.ln_out.weight')).toBe('ln_out.weight');
    expect(hfToOfficial('head.weight')).toBe('head.weight');
    expect(hfToOfficial('blocks.0.att.key.weight')).toBe('blocks.0.att.key.weight');
  });

  it('names the file and the tensor when a tensor is missing or the file cannot be opened', () => {
    const p = path.join(FIX, 'finch-tiny', 'model.safetensors');
    expect(userError(() => withCkpt(p, (c) => c.info('nope.weight'))).message).toBe(`${p}: nope.weight: tensor not found in checkpoint`);
    expect(userError(() => openCheckpoint(tmpFile('missing.pth'))).message).toContain('missing.pth: cannot read: ENOENT');
    expect(userError(() => openCheckpoint(tmp)).message).toContain('not a regular file');
  });

  it('reports missing, unknown and wrongly shaped tensors; allows time_state', () => {
    const src = path.join(FIX, 'finch-tiny', 'model.safetensors');
    const cfg = withCkpt(src, inferConfig);
    const tensors: TensorToWrite[] = withCkpt(src, (c) => c.names()
      .filter((n) => n !== 'blocks.1.att.key.weight')
      .map((n) => ({ ...c.info(n), data: c.readF32(n) })));
    const lnOut = tensors.find((t) => t.name === 'ln_out.weight')!;
    lnOut.shape = [2, 64];
    tensors.push({ name: 'blocks.0.att.bogus', dtype: 'f32', shape: [1], data: new Float32Array(1) });
    tensors.push({ name: 'blocks.1.att.time_state', dtype: 'f32', shape: [2, 64, 64], data: new Float32Array(2 * 64 * 64) });
    const p = tmpFile('broken.safetensors');
    writeSafetensors(p, tensors);
    const msg = userError(() => withCkpt(p, (c) => validateCheckpoint(c, cfg))).message;
    expect(msg).toContain(p);
    expect(msg).toContain('blocks.1.att.key.weight: missing');
    expect(msg).toContain('blocks.0.att.bogus: unknown tensor');
    expect(msg).toContain('ln_out.weight: wrong shape [2, 64] (expected [128])');
    expect(msg).not.toContain('time_state');
    expect(msg).toContain('3 problem(s)');

    tensors.pop();
    tensors.push({ name: 'blocks.1.att.time_state', dtype: 'f32', shape: [2, 64], data: new Float32Array(128) });
    writeSafetensors(p, tensors);
    expect(userError(() => withCkpt(p, (c) => validateCheckpoint(c, cfg))).message).toContain('blocks.1.att.time_state: wrong shape [2, 64] (expected [2, 64, 64])');

    // A stray high block index is a gap, not 1e9 layers.
    tensors.push({ name: 'blocks.999999999.att.time_state', dtype: 'f32', shape: [1], data: new Float32Array(1) });
    writeSafetensors(p, tensors);
    expect(userError(() => withCkpt(p, inferConfig)).message).toBe(`${p}: blocks.2: missing, but there are tensors for blocks.999999999`);
  });
});

describe('.pth reader', () => {
  /** The entries of a fixture .pth, extracted with our own ZIP reader. */
  function fixtureEntries(p: string): ZipInput[] {
    const f = openFile(p);
    try {
      return [...readZipDirectory(f).values()].map((e) => ({ name: e.name, data: readAt(f, entryDataOffset(f, e), e.size) }));
    } finally {
      closeFile(f);
    }
  }

  it('reads the same tensors from a ZIP64 rewrite of the fixture', () => {
    const src = path.join(FIX, 'finch-tiny-bf16', 'model.pth');
    const p = writeZip(tmpFile('zip64.pth'), fixtureEntries(src), true);
    withCkpt(src, (a) => withCkpt(p, (b) => {
      expect(b.names()).toEqual(a.names());
      for (const n of a.names()) expect(Buffer.from(b.readRaw(n)).equals(Buffer.from(a.readRaw(n)))).toBe(true);
    }));
  });

  it('finds a storage past 4 GiB (ZIP64 offsets) without reading the rest', () => {
    const pkl = statePickle([{ name: 'w', storage: 'FloatStorage', key: '1', numel: 2, offset: 0, size: [2], stride: [1] }]);
    const p = writeZip(tmpFile('big.pth'), [
      { name: 'big/data.pkl', data: pkl },
      { name: 'big/data/0', size: 2 ** 32 + 100 },
      { name: 'big/data/1', data: new Uint8Array(Float32Array.of(3, 4).buffer) },
    ], true);
    withCkpt(p, (c) => expect([...c.readF32('w')]).toEqual([3, 4]));
  });

  it('handles f16 storages, storage offsets and shared storages', () => {
    const h = Uint16Array.of(0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600); // 1..6 in f16
    const pkl = statePickle([
      { name: 'a', storage: 'HalfStorage', key: '0', numel: 6, offset: 0, size: [2, 2], stride: [2, 1] },
      { name: 'b', storage: 'HalfStorage', key: '0', numel: 6, offset: 4, size: [2, 1], stride: [1, 1] },
    ]);
    const p = writeZip(tmpFile('f16.pth'), [{ name: 'm/data.pkl', data: pkl }, { name: 'm/data/0', data: new Uint8Array(h.buffer) }]);
    withCkpt(p, (c) => {
      expect(c.info('a')).toEqual({ name: 'a', dtype: 'f16', shape: [2, 2] });
      expect([...c.readF32('a')]).toEqual([1, 2, 3, 4]);
      expect([...c.readF32('b')]).toEqual([5, 6]);
    });
  });

  const oneTensor = (t: Partial<PklTensor>) =>
    statePickle([{ name: 'w', storage: 'FloatStorage', key: '0', numel: 4, offset: 0, size: [2, 2], stride: [2, 1], ...t }]);

  it('refuses non-contiguous tensors, tensors past their storage, missing storages', () => {
    expect(userError(() => openCheckpoint(pthWith('nc.pth', oneTensor({ stride: [1, 2] })))).message)
      .toMatch(/nc\.pth: w: non-contiguous tensor \(size \[2, 2\], stride \[1, 2\]\)/);
    expect(userError(() => openCheckpoint(pthWith('past.pth', oneTensor({ offset: 1 })))).message).toMatch(/past\.pth: w: tensor bytes 4\.\.20 extend past its storage/);
    expect(userError(() => openCheckpoint(pthWith('nokey.pth', oneTensor({ key: '7' })))).message).toMatch(/nokey\.pth: w: storage m\/data\/7 is missing/);
  });

  it('refuses compressed entries and ZIPs without data.pkl', () => {
    expect(userError(() => openCheckpoint(pthWith('deflated.pth', oneTensor({}), undefined, 8))).message)
      .toMatch(/deflated\.pth: m\/data\.pkl: ZIP entry is compressed \(method 8\)/);
    const p = writeZip(tmpFile('nopkl.pth'), [{ name: 'm/other', data: new Uint8Array(4) }]);
    expect(userError(() => openCheckpoint(p)).message).toMatch(/nopkl\.pth: not a PyTorch checkpoint: no <stem>\/data\.pkl/);
  });

  it('refuses malicious pickles by name, before anything else', () => {
    const evil = [
      [Buffer.concat([op.proto, op.global('__builtin__', 'eval'), op.mark, op.str('1+1'), op.tuple, op.reduce, op.stop]), '__builtin__.eval'],
      [Buffer.concat([op.proto, op.global('os', 'system'), op.mark, op.str('touch /tmp/pwned'), op.tuple, op.reduce, op.stop]), 'os.system'],
      [Buffer.concat([Buffer.from([0x80, 4, 0x8c, 2]), Buffer.from('os'), Buffer.from([0x8c, 6]), Buffer.from('system'), Buffer.from([0x93]), op.stop]), 'os.system'],
      [Buffer.concat([op.proto, op.global('torch', 'load'), op.stop]), 'torch.load'],
    ] as const;
    for (const [pkl, name] of evil) {
      expect(userError(() => openCheckpoint(pthWith('evil.pth', pkl))).message).toContain(`m/data.pkl: refusing pickle global ${name}`);
    }
    const inst = Buffer.concat([op.proto, op.mark, Buffer.from('ios\nsystem\n'), op.stop]);
    expect(userError(() => openCheckpoint(pthWith('inst.pth', inst))).message).toContain('unsupported pickle opcode INST (0x69)');
    const unknown = Buffer.concat([op.proto, Buffer.from([0xff]), op.stop]);
    expect(userError(() => openCheckpoint(pthWith('unk.pth', unknown))).message).toContain('unknown pickle opcode 0xff (pickle byte 2)');
    const nostop = Buffer.concat([op.proto, op.emptyDict]);
    expect(userError(() => openCheckpoint(pthWith('nostop.pth', nostop))).message).toContain('truncated pickle: no STOP opcode');
  });
});

// ---------- hostile inputs (issue 17): bounded nesting, bounded messages, no aliasing, checksums, formats ----------

describe('hostile checkpoints are refused in one short line', () => {
  /** A safetensors file with this header text and `dataLen` bytes of data. */
  const stWith = (name: string, header: string, dataLen = 0) => {
    const h = Buffer.from(header);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const p = tmpFile(name);
    fs.writeFileSync(p, Buffer.concat([len, h, Buffer.alloc(dataLen)]));
    return p;
  };
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const short = (e: UserError) => {
    expect(e.message.length).toBeLessThanOrEqual(1000);
    return e.message;
  };

  it('safetensors shape, dtype and data_offsets nested 20k deep', () => {
    for (const field of ['shape', 'dtype', 'data_offsets']) {
      const entry = { dtype: 'F32', shape: [1], data_offsets: [0, 4], [field]: '@' };
      const p = stWith('deep.safetensors', JSON.stringify({ x: entry }).replace('"@"', deep(20_000)), 4);
      expect(short(userError(() => openCheckpoint(p)))).toMatch(/deep\.safetensors: bad header JSON: nested more than 64 deep/);
    }
    // under the nesting bound, a wide or long value is described in a bounded way, not stringified whole
    const wide = stWith('wide.safetensors', JSON.stringify({ x: { dtype: Array(100_000).fill([1, [2, [3]]]), shape: [1], data_offsets: [0, 4] } }), 4);
    expect(short(userError(() => openCheckpoint(wide)))).toMatch(/wide\.safetensors: x: unknown dtype \[\[1, \[2, \[3\]\]\], .*…/);
  });

  it('a 5 MB dtype string is clipped, and through a pipe the CLI prints the whole line', () => {
    const p = stWith('long.safetensors', JSON.stringify({ ['n'.repeat(1e5)]: { dtype: 'Z'.repeat(5e6), shape: [1], data_offsets: [0, 4] } }), 4);
    const m = short(userError(() => openCheckpoint(p)));
    expect(m).toMatch(/long\.safetensors: n{200}…: unknown dtype "Z{199}… \(supported: F32, /);
    const r = spawnSync('node', ['bin/rwkvc.js', 'logits', '--model', p, '--tokens', '1', '--out', tmpFile('never.safetensors')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^rwkvc: .*long\.safetensors: n+…: unknown dtype "Z+… \(supported: F32, [^\n]*\)\n$/);
    expect(r.stderr.length).toBeLessThan(1100);
  });

  it('a .pth dict key that is a 500k-deep list, a huge list, or a list holding itself', () => {
    const n = 500_000;
    const deepKey = Buffer.concat([op.proto, op.emptyDict, Buffer.alloc(n, ']'), Buffer.alloc(n - 1, 'a'), Buffer.from('N'), Buffer.from('s'), op.stop]);
    expect(short(userError(() => openCheckpoint(pthWith('deepkey.pth', deepKey)))))
      .toMatch(/deepkey\.pth: m\/data\.pkl: malformed pickle: values nested more than 100 deep \(pickle byte \d+\)/);
    const ints = Buffer.alloc(2 * 1_000_000, 'K\x07', 'latin1');
    const hugeKey = Buffer.concat([op.proto, op.emptyDict, op.mark, ints, Buffer.from('l'), Buffer.from('N'), Buffer.from('s'), op.stop]);
    expect(short(userError(() => openCheckpoint(pthWith('hugekey.pth', hugeKey))))).toMatch(/hugekey\.pth: m\/data\.pkl: dict key \[7, 7, .*…/);
    const selfKey = Buffer.concat([op.proto, op.emptyDict, Buffer.from(']q\x00h\x00a', 'latin1'), Buffer.from('N'), Buffer.from('s'), op.stop]);
    expect(short(userError(() => openCheckpoint(pthWith('selfkey.pth', selfKey))))).toMatch(/selfkey\.pth: m\/data\.pkl: dict key \[\[\[\[/);
  });

  it('aliased and overlapping safetensors data_offsets are refused, naming both tensors', () => {
    const t = (b: number, e: number) => ({ dtype: 'F32', shape: [(e - b) / 4], data_offsets: [b, e] });
    const layers = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`blocks.${i}.att.key.weight`, t(0, 4096)]));
    expect(short(userError(() => openCheckpoint(stWith('alias.safetensors', JSON.stringify(layers), 4096)))))
      .toMatch(/alias\.safetensors: blocks\.\d+\.att\.key\.weight: data_offsets has the same bytes as tensor blocks\.\d+\.att\.key\.weight \(tensors may not share bytes\)/);
    expect(userError(() => openCheckpoint(stWith('overlap.safetensors', JSON.stringify({ a: t(0, 8), b: t(4, 12) }), 12))).message)
      .toMatch(/overlap\.safetensors: b: data_offsets overlaps tensor a/);
    // adjacent tensors and empty ones anywhere are fine
    withCkpt(stWith('adjacent.safetensors', JSON.stringify({ a: t(0, 8), b: t(8, 12), e: t(4, 4) }), 12), (c) => expect(c.names()).toHaveLength(3));
  });

  it('CRC-32: a flipped bit in a tensor storage or in data.pkl is refused, naming the entry', () => {
    const src = path.join(FIX, 'finch-tiny', 'model.pth');
    const bytes = fs.readFileSync(src);
    const f = openFile(src);
    const entries = [...readZipDirectory(f).values()];
    const storage = entries.find((e) => /\/data\/\d+$/.test(e.name) && e.size > 0)!;
    const pkl = entries.find((e) => e.name.endsWith('data.pkl'))!;
    const storageAt = entryDataOffset(f, storage), pklAt = entryDataOffset(f, pkl);
    closeFile(f);

    const flipped = Buffer.from(bytes);
    flipped[storageAt + Math.floor(storage.size / 2)]! ^= 0x10;
    const p = tmpFile('crc.pth');
    fs.writeFileSync(p, flipped);
    withCkpt(p, (c) => {
      const hit = c.names().filter((n) => { try { c.readRaw(n); return false; } catch (e) { return e instanceof UserError; } });
      expect(hit.length).toBeGreaterThan(0);
      const e = userError(() => c.readF32(hit[0]!));
      expect(e.message).toContain(`crc.pth: ${storage.name}: corrupt ZIP entry: its data has CRC-32 0x`);
    });

    // a tensor name in the pickle, changed in place: the pickle parses, its checksum does not match
    const name = Buffer.from('emb.weight');
    const at = bytes.indexOf(name, pklAt);
    expect(at).toBeGreaterThan(pklAt);
    const renamed = Buffer.from(bytes);
    renamed[at] = 'E'.charCodeAt(0);
    fs.writeFileSync(p, renamed);
    expect(userError(() => openCheckpoint(p)).message).toContain(`crc.pth: ${pkl.name}: corrupt ZIP entry`);
  });

  it('our CRC-32 is zlib\'s', () => {
    for (const n of [0, 1, 7, 8, 9, 63, 64, 65, 4097]) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 197 + n) & 0xff);
      expect(crc32(b), `${n} bytes`).toBe(zlib.crc32(b));
    }
  });

  it('GGUF and unknown binaries are "not a supported format", not a truncation', () => {
    const gguf = Buffer.concat([Buffer.from('GGUF'), Buffer.from([3, 0, 0, 0]), Buffer.alloc(64, 0xee)]);
    fs.writeFileSync(tmpFile('m.gguf'), gguf);
    expect(userError(() => openCheckpoint(tmpFile('m.gguf'))).message)
      .toMatch(/m\.gguf: not a supported format \(expected a \.pth ZIP or safetensors\); this looks like GGUF$/);
    fs.writeFileSync(tmpFile('m.bin'), Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 37) & 0xff)));
    expect(userError(() => openCheckpoint(tmpFile('m.bin'))).message).toMatch(/m\.bin: not a supported format \(expected a \.pth ZIP or safetensors\)$/);
  });
});

describe('pickle memory is bounded', () => {
  it('a pickle of a million-plus EMPTY_DICTs, or a stack of millions of ints, is refused, not an out-of-memory crash', () => {
    const dicts = Buffer.concat([op.proto, Buffer.alloc(1_200_000, '}'), op.stop]);
    expect(userError(() => openCheckpoint(pthWith('dicts.pth', dicts))).message).toMatch(/dicts\.pth: m\/data\.pkl: malformed pickle: more than 1000000 values/);
    const ints = Buffer.concat([op.proto, Buffer.alloc(2 * 4_100_000, 'K\x01', 'latin1'), op.stop]);
    expect(userError(() => openCheckpoint(pthWith('ints.pth', ints))).message).toMatch(/ints\.pth: m\/data\.pkl: malformed pickle: more than 4000000 values on the stack/);
  });
});

describe('.pth memory is bounded by the file', () => {
  it('hundreds of tensors over one storage are refused; a few sharing one are fine', () => {
    const many = Array.from({ length: 400 }, (_, i) => ({ name: `blocks.${i}.w`, storage: 'FloatStorage', key: '0', numel: 1024, offset: 0, size: [1024], stride: [1] }));
    const p = writeZip(tmpFile('shared.pth'), [{ name: 'm/data.pkl', data: statePickle(many) }, { name: 'm/data/0', data: new Uint8Array(4096) }]);
    expect(userError(() => openCheckpoint(p)).message).toMatch(/shared\.pth: tensors declare 1638400 bytes, over 4× the file's \d+: storages shared implausibly often/);
    const tied = writeZip(tmpFile('tied.pth'), [{ name: 'm/data.pkl', data: statePickle(many.slice(0, 2)) }, { name: 'm/data/0', data: new Uint8Array(4096) }]);
    withCkpt(tied, (c) => expect(c.names()).toHaveLength(2));
  });
});
