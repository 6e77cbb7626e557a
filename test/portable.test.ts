/**
 * The runtime modules a browser (or a generated package bundled for one) needs must not reach Node:
 * each is bundled by esbuild for `platform: 'browser'`, which fails on any `node:` import in its
 * import graph, and every file in that graph is searched for the Node globals Buffer and process.
 * The in-memory byte source must read checkpoints exactly like the Node file source.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../runtime/checkpoint/index.ts';
import { openCheckpointBytes } from '../runtime/checkpoint/reader.ts';
import { UserError } from '../kernels/errors.ts';
import { parseWorldVocab, parseWorldVocabBytes } from '../runtime/world-tokenizer.ts';

const ROOT = join(import.meta.dirname, '..');
const FIX = join(import.meta.dirname, 'fixtures');

/** What a browser build of the runtime imports (the package's portable part). */
export const PORTABLE = [
  'runtime/checkpoint/reader.ts',
  'runtime/world-tokenizer.ts',
  'runtime/session.ts',
  'runtime/sampler.ts',
  'runtime/state-file.ts',
  'kernels/errors.ts',
  'runtime/package/model.ts',
  'runtime/package/platform-web.ts',
  'kernels/weights.ts',
  'kernels/dtype.ts',
];

async function bundleForBrowser(entry: string) {
  return build({
    entryPoints: [join(ROOT, entry)], bundle: true, platform: 'browser', format: 'esm', target: 'es2022',
    write: false, metafile: true, logLevel: 'silent', absWorkingDir: ROOT,
  });
}

/** Byte-identical typed arrays (toEqual is slow on a model's worth of values). */
const same = (x: ArrayBufferView, y: ArrayBufferView) =>
  Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));

/** Source text without comments (a comment may well mention Buffer). */
const code = (src: string) => src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');

describe('portable runtime modules', () => {
  it.each(PORTABLE)('%s bundles for the browser with no Node built-in or global', async (entry) => {
    const r = await bundleForBrowser(entry);
    expect(r.errors).toEqual([]);
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.length).toBeGreaterThan(0);
    for (const f of inputs) {
      expect(f).not.toMatch(/^node:/);
      const src = code(readFileSync(join(ROOT, f), 'utf8'));
      expect(src, f).not.toMatch(/(?<![\w$])Buffer\b/);
      expect(src, f).not.toMatch(/(?<![\w$.])process\s*\./);
      expect(src, f).not.toMatch(/from\s+['"]node:|import\(\s*['"]node:|require\(/);
    }
  });

  it('the check has teeth: the Node facades do not bundle for the browser', async () => {
    for (const entry of ['runtime/checkpoint/index.ts', 'runtime/tokenizer.ts']) {
      await expect(bundleForBrowser(entry)).rejects.toThrow(/node:fs/);
    }
  });
});

describe('checkpoints from bytes', () => {
  for (const file of ['model.safetensors', 'model.pth', 'model-hf.safetensors']) {
    it(`${file}: the same names, infos and values as from the file`, () => {
      const p = join(FIX, 'finch-tiny-bf16', file);
      const a = openCheckpoint(p);
      const b = openCheckpointBytes(file, new Uint8Array(readFileSync(p)));
      try {
        expect(b.format).toBe(a.format);
        expect(b.path).toBe(file);
        expect(b.names()).toEqual(a.names());
        for (const n of a.names()) {
          expect(b.info(n)).toEqual(a.info(n));
          expect(same(b.readF32(n), a.readF32(n)), n).toBe(true);
          expect(same(b.readRaw(n), a.readRaw(n)), n).toBe(true);
        }
      } finally {
        a.close();
        b.close();
      }
    });
  }

  it('reads from an ArrayBuffer and at unaligned offsets of a larger buffer', () => {
    const raw = readFileSync(join(FIX, 'finch-tiny', 'model.safetensors'));
    const padded = new Uint8Array(raw.length + 3);
    padded.set(raw, 3);
    const a = openCheckpointBytes('a', padded.subarray(3));
    const b = openCheckpointBytes('b', padded.slice(3).buffer);
    expect(a.names().length).toBeGreaterThan(10);
    for (const n of a.names()) expect(same(a.readF32(n), b.readF32(n)), n).toBe(true);
  });

  it('a truncated or foreign file is one line naming it', () => {
    const raw = new Uint8Array(readFileSync(join(FIX, 'finch-tiny', 'model.pth')));
    const errs = [raw.subarray(0, raw.length - 100), raw.subarray(0, 3), new TextEncoder().encode('hello world, no model')]
      .map((bytes) => {
        try {
          openCheckpointBytes('upload.bin', bytes);
        } catch (e) {
          return e;
        }
        return null;
      });
    for (const e of errs) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as Error).message).toMatch(/^upload\.bin: /);
      expect((e as Error).message).not.toContain('\n');
    }
  });
});

describe('tokenizer from text or bytes', () => {
  it('parses the same vocabulary from both', () => {
    const lines = Array.from({ length: 256 }, (_, b) => `${b + 1} b'\\x${b.toString(16).padStart(2, '0')}' 1`);
    lines.push("257 'hello' 5");
    const text = lines.join('\n');
    const a = parseWorldVocab(text), b = parseWorldVocabBytes(new TextEncoder().encode(text));
    expect(b.encode('hello, hello')).toEqual(a.encode('hello, hello'));
    expect(a.encode('hello')).toEqual([257]);
    expect(() => parseWorldVocabBytes(Uint8Array.of(0xff, 0xfe), 'v.txt')).toThrow(/^v\.txt: not valid UTF-8$/);
  });
});
