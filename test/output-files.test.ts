/**
 * Output files (issue 17): the atomic writer replaces only a regular file (or nothing). A device node, a
 * FIFO, a directory or a symlink at --out / -o is refused with one line and left as it was; a parent that
 * is a file is one line; a signal during a write leaves no temporary file; run --state-out checks its path
 * before generating.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkWritable, writeFileAtomic } from '../runtime/checkpoint/fileio.ts';
import { UserError } from '../kernels/errors.ts';
import { FIXTURES } from './helpers/golden.ts';

const tmp = mkdtempSync(join(tmpdir(), 'rwkvc-out-'));
const rwkvc = (...args: string[]) => spawnSync('node', ['bin/rwkvc.js', ...args], { encoding: 'utf8' });
const fixture = join(FIXTURES, 'finch-tiny', 'model.safetensors');
/** One line, `rwkvc: <path>: …`, no stack trace. */
const oneLine = (stderr: string, path: string) => {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0].startsWith(`rwkvc: ${path}: `), stderr).toBe(true);
  expect(stderr).not.toMatch(/\n\s+at /);
};

describe('writeFileAtomic refuses what is not a regular file', () => {
  const fifo = join(tmp, 'fifo');
  const target = join(tmp, 'target.txt');
  const link = join(tmp, 'link.safetensors');
  const dangling = join(tmp, 'dangling.safetensors');
  beforeAll(() => {
    execFileSync('mkfifo', [fifo]);
    writeFileSync(target, 'keep');
    symlinkSync(target, link);
    symlinkSync(join(tmp, 'nowhere'), dangling);
  });

  it.each([
    ['a FIFO', () => fifo, /not a regular file \(a FIFO\)/],
    ['a symlink', () => link, /symbolic link/],
    ['a dangling symlink', () => dangling, /symbolic link/],
    ['/dev/null', () => '/dev/null', /not a regular file \(a character device\)/],
    ['a directory', () => tmp, /not a regular file \(a directory\)/],
  ])('rwkvc logits --out %s: exit 2, one line, left untouched', (_, path, why) => {
    const p = path();
    const before = lstatSync(p);
    const r = rwkvc('logits', '--model', fixture, '--tokens', '1,2', '--out', p);
    expect(r.status, r.stderr).toBe(2);
    oneLine(r.stderr, p);
    expect(r.stderr).toMatch(why);
    const after = lstatSync(p);
    expect([after.ino, after.mode, after.rdev, after.size]).toEqual([before.ino, before.mode, before.rdev, before.size]);
    expect(readFileSync(target, 'utf8')).toBe('keep');
    expect(readlinkSync(link)).toBe(target);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('/dev/full is refused before anything is written', () => {
    const r = rwkvc('random-model', '--layers', '1', '--embd', '64', '--vocab', '16', '-o', '/dev/full');
    expect(r.status).toBe(2);
    oneLine(r.stderr, '/dev/full');
    expect(statSync('/dev/full').isCharacterDevice()).toBe(true);
  });

  it('gguf -o at a FIFO is refused before reading the model', () => {
    const r = rwkvc('gguf', '--model', fixture, '-o', fifo);
    expect(r.status).toBe(2);
    oneLine(r.stderr, fifo);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('--out whose parent is a file, or a missing folder: one line, exit 2, no trace', () => {
    const file = join(tmp, 'plain');
    writeFileSync(file, 'x');
    for (const out of [join(file, 'o.safetensors'), join(tmp, 'no', 'such', 'o.safetensors')]) {
      const r = rwkvc('logits', '--model', fixture, '--tokens', '1', '--out', out);
      expect(r.status, r.stderr).toBe(2);
      oneLine(r.stderr, out);
      expect(r.stderr).toMatch(/cannot write/);
    }
  });

  it('in process: the same refusals are UserErrors; a regular file is replaced; no temporary file is left', () => {
    for (const p of [fifo, link, '/dev/null', join(tmp, 'plain', 'x')]) {
      expect(() => writeFileAtomic(p, [new Uint8Array(4)])).toThrow(UserError);
      expect(() => checkWritable(p)).toThrow(UserError);
    }
    const ok = join(tmp, 'ok.bin');
    writeFileSync(ok, 'old');
    writeFileAtomic(ok, [new Uint8Array([1, 2]), new Uint8Array([3])]);
    expect([...readFileSync(ok)]).toEqual([1, 2, 3]);
    // a failure half-way leaves the old file and no temporary one
    expect(() => writeFileAtomic(ok, (function* () { yield new Uint8Array([9]); throw new UserError('bad value'); })())).toThrow('bad value');
    expect([...readFileSync(ok)]).toEqual([1, 2, 3]);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('a signal during a write leaves no temporary file', () => {
  const dir = join(tmp, 'sig');
  const model = join(dir, 'm.safetensors');
  beforeAll(() => {
    mkdirSync(dir);
    const r = rwkvc('random-model', '--layers', '6', '--embd', '512', '--vocab', '2000', '--dtype', 'f32', '-o', model);
    expect(r.status, r.stderr).toBe(0);
  }, 60_000);

  /** Start `rwkvc gguf`, send `sig` as soon as its temporary file exists, and wait for the end. */
  const interrupted = (sig: NodeJS.Signals, out: string) => new Promise<{ code: number | null; signal: string | null; sawTmp: boolean }>((resolve) => {
    const p = spawn('node', ['bin/rwkvc.js', 'gguf', '--model', model, '--weights', 'q8_0', '-o', out], { stdio: 'ignore' });
    let sawTmp = false;
    const poll = setInterval(() => {
      if (readdirSync(dir).some((f) => f.startsWith(`${out.split('/').pop()}.tmp-`))) {
        sawTmp = true;
        clearInterval(poll);
        p.kill(sig);
      }
    }, 5);
    p.on('exit', (code, signal) => { clearInterval(poll); resolve({ code, signal, sawTmp }); });
  });

  it('SIGINT and SIGTERM during `rwkvc gguf`', async () => {
    const [a, b] = await Promise.all([interrupted('SIGINT', join(dir, 'a.gguf')), interrupted('SIGTERM', join(dir, 'b.gguf'))]);
    expect(a.sawTmp && b.sawTmp).toBe(true);
    // the default action: stopped at once by the signal, not after finishing the file
    expect([a.signal, b.signal]).toEqual(['SIGINT', 'SIGTERM']);
    expect(readdirSync(dir).filter((f) => f.endsWith('.gguf'))).toEqual([]);
    // the guard removes the temporary files as the process ends (give its `sh` a moment)
    const left = () => readdirSync(dir).filter((f) => f.includes('.tmp-'));
    for (let i = 0; i < 200 && left().length; i++) await new Promise((r) => setTimeout(r, 10));
    expect(left()).toEqual([]);
  }, 60_000);
});

describe('run --state-out', () => {
  it('an unwritable path is refused before loading or generating', () => {
    const fifo = join(tmp, 'state-fifo');
    execFileSync('mkfifo', [fifo]);
    for (const out of [fifo, join(tmp, 'missing-dir', 's.state')]) {
      const t0 = Date.now();
      const r = rwkvc('run', '--model', fixture, '--vocab', join(tmp, 'no-vocab.txt'), '--prompt', 'a', '--state-out', out);
      expect(r.status).toBe(2);
      oneLine(r.stderr, out);
      expect(r.stdout).toBe('');
      expect(Date.now() - t0).toBeLessThan(30_000);
    }
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });
});
