/** The command line as users run it: exit codes, one-line errors, printing the IR, inspect. */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../runtime/checkpoint/index.ts';
import { FIXTURES, maxAbsDiff, readGolden } from './helpers/golden.ts';
import { PASSES } from '../compiler/pipeline.ts';

const tmp = mkdtempSync(join(tmpdir(), 'rwkvc-cli-'));
const rwkvc = (...args: string[]) => spawnSync('node', ['bin/rwkvc.js', ...args], { encoding: 'utf8' });
const fixture = join(FIXTURES, 'finch-tiny', 'model.safetensors');

describe('rwkvc logits', () => {
  it('writes logits and state in the golden layout (plan target, chunked)', () => {
    const golden = readGolden('finch-tiny');
    const out = join(tmp, 'o.safetensors');
    const r = rwkvc('logits', '--model', fixture, '--tokens', [...golden.tokens].join(','), '--mode', 'chunks:3', '--target', 'plan', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const o = openCheckpoint(out);
    expect(o.info('logits').shape).toEqual([16, 256]);
    expect(o.info('state.1.wkv').shape).toEqual([2, 64, 64]);
    expect(maxAbsDiff(o.readF32('logits'), golden.logits)).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(o.readF32('state.1.wkv'), golden.state['state.1.wkv'])).toBeLessThanOrEqual(1e-4);
  });

  it('finds its default model description from any working directory', () => {
    const out = join(tmp, 'elsewhere.safetensors');
    const r = spawnSync('node', [join(process.cwd(), 'bin/rwkvc.js'), 'logits', '--model', fixture, '--tokens', '1,2', '--out', out],
      { encoding: 'utf8', cwd: tmp });
    expect(r.status, r.stderr).toBe(0);
    expect(openCheckpoint(out).info('logits').shape).toEqual([2, 256]);
  });
});

describe('bad input: one line naming the file and the problem, exit code 2', () => {
  const bytes = readFileSync(fixture);
  const write = (name: string, data: Uint8Array | string) => { const p = join(tmp, name); writeFileSync(p, data); return p; };
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString());
  const withHeader = (h: object) => {
    const json = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, json, bytes.subarray(8 + headerLen)]);
  };
  const cases: [string, () => string, RegExp][] = [
    ['truncated file', () => write('trunc.safetensors', bytes.subarray(0, bytes.length - 1000)), /trunc\.safetensors: .*(past|truncated|end)/i],
    ['bad header', () => write('hdr.safetensors', Buffer.concat([bytes.subarray(0, 8), Buffer.from('{not json'), bytes.subarray(17)])), /hdr\.safetensors: .*(JSON|header)/i],
    ['unknown dtype', () => write('dt.safetensors', withHeader({ ...header, 'head.weight': { ...header['head.weight'], dtype: 'Q4' } })), /dt\.safetensors: head\.weight: .*dtype/i],
    ['missing tensor', () => { const h = { ...header }; delete h['ln_out.bias']; return write('miss.safetensors', withHeader(h)); }, /miss\.safetensors: .*ln_out\.bias.*missing/i],
    ['extra tensor', () => write('extra.safetensors', withHeader({ ...header, 'blocks.0.att.bogus': header['ln_out.bias'] })), /extra\.safetensors: .*blocks\.0\.att\.bogus/i],
    ['wrong shape', () => write('shape.safetensors', withHeader({ ...header, 'ln_out.bias': { ...header['ln_out.bias'], shape: [64, 2] } })), /shape\.safetensors: .*ln_out\.bias/i],
    ['not a ZIP', () => write('bad.pth', Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(100)])), /bad\.pth: /],
    ['no such file', () => join(tmp, 'nope.pth'), /nope\.pth: /],
  ];
  it.each(cases)('%s', (_, make, message) => {
    const r = rwkvc('logits', '--model', make(), '--tokens', '1,2', '--out', join(tmp, 'x.safetensors'));
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^rwkvc: /);
    expect(lines[0]).toMatch(message);
  });

  it('an unknown pickle opcode and a refused global in a .pth', () => {
    const pth = readFileSync(join(FIXTURES, 'finch-tiny', 'model.pth'));
    const at = pth.indexOf(Buffer.from('ctorch._utils\n_rebuild_tensor_v2'));
    const evil = Buffer.from(pth);
    Buffer.from('cos\nsystem\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n').copy(evil, at); // same length, zip offsets intact
    const r = rwkvc('logits', '--model', write('evil.pth', evil), '--tokens', '1', '--out', join(tmp, 'x.safetensors'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/evil\.pth: .*(refus|opcode)/i);
  });

  it('usage errors (a bad --target choice, an unknown command) exit 2 too', () => {
    expect(rwkvc('logits', '--model', fixture, '--tokens', '1', '--target', 'bogus', '--out', join(tmp, 'x.safetensors')).status).toBe(2);
    expect(rwkvc('nosuchcommand').status).toBe(2);
    const bad = rwkvc('logits', '--model', fixture, '--tokens', '1', '--threads', 'two', '--out', join(tmp, 'x.safetensors'));
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--threads <n>' argument 'two' is invalid/);
    expect(rwkvc('logits', '--help').status).toBe(0);
  });

  it('token ids out of range and bad modes', () => {
    for (const args of [['--tokens', '1,999'], ['--tokens', '1', '--mode', 'chunks:0'], ['--tokens', 'a,b']]) {
      const r = rwkvc('logits', '--model', fixture, ...args, '--out', join(tmp, 'x.safetensors'));
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('rwkvc compile / inspect', () => {
  it('--print-after all shows the IR after every pass; inspect reports the plan', () => {
    const dir = join(tmp, 'plan');
    const r = rwkvc('compile', 'examples/finch.ts', '--config', fixture, '-o', dir, '--print-after', 'all', '--verify-each', '--time-passes');
    expect(r.status, r.stderr).toBe(0);
    for (const p of PASSES) expect(r.stdout).toContain(`// ----- IR after ${p.name} -----`);
    expect(r.stdout).toMatch(/token_shift\(.*\{eps=0.00001, nMix=5, loraDim=32\}/);
    const s = JSON.parse(execFileSync('node', ['bin/rwkvc.js', 'inspect', dir, '--json'], { encoding: 'utf8' }));
    expect(s.decodeKernelsPerLayer).toBeLessThanOrEqual(10);
    expect(s.prefillKernelsPerLayer).toBeLessThanOrEqual(10);
    expect(s.activationPeakBytes.decode).toBeGreaterThan(0);
    expect(s.weightBytes.f32).toBeGreaterThan(0);
    const text = execFileSync('node', ['bin/rwkvc.js', 'inspect', dir], { encoding: 'utf8' });
    expect(text).toMatch(/L0\.wkv\S*\s+wkv\s+examples\/finch\.ts:\d+:\d+/);
  });

  it.each(['wasm', 'wgsl'])('--target %s --emit kernels prints every generated kernel with its plan kernels and DSL lines', (target) => {
    const dir = join(tmp, `kernels-${target}`);
    const r = rwkvc('compile', 'examples/finch.ts', '--config', 'finch-tiny', '--target', target, '--emit', 'kernels', '-o', dir);
    expect(r.status, r.stderr).toBe(0);
    const heads = r.stdout.match(new RegExp(`^// ─── ${target} kernel \\d+/\\d+: .*$`, 'gm')) ?? [];
    expect(heads.length).toBeGreaterThanOrEqual(5);
    expect(r.stdout).toMatch(/^\/\/ plan kernels: .*L0\./m);
    expect(r.stdout).toMatch(/^\/\/ DSL: examples\/finch\.ts:\d+:\d+/m);
    expect(r.stdout).toContain(target === 'wgsl' ? '@compute' : '(func $k0');
    expect(r.stderr).toMatch(new RegExp(`${target}: \\d+ kernels`));
  });

  it('--emit plan with --target sizes the plan on that target and generates no kernels; --target alone writes the kernel files', () => {
    const dir = join(tmp, 'plan-wasm');
    const r = rwkvc('compile', 'examples/finch.ts', '--config', 'finch-tiny', '--target', 'wasm', '--emit', 'plan', '-o', dir);
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(dir, 'plan.json'))).toBe(true);
    expect(existsSync(join(dir, 'wasm'))).toBe(false);
    expect(r.stderr).toMatch(/rwkvc: wasm: weights [\d.]+ [MG]iB, state [\d.]+ [MG]iB, arena [\d.]+ [MG]iB, total [\d.]+ [MG]iB; fits wasm32/);
    const files = join(tmp, 'files-wasm');
    const f = rwkvc('compile', 'examples/finch.ts', '--config', 'finch-tiny', '--target', 'wasm', '-o', files);
    expect(f.status, f.stderr).toBe(0);
    expect(readdirSync(join(files, 'wasm')).length).toBeGreaterThan(0);
  });

  it('a DSL mistake is reported at its line, exit code 2', () => {
    const dsl = join(tmp, 'bad-model.mts');
    copyFileSync('examples/finch.ts', dsl);
    const src = readFileSync(dsl, 'utf8').replace("m.weight(p + 'key.weight', [C, C])", "m.weight(p + 'key.weight', [C, C + 1])")
      .replaceAll("'../ir/dsl.ts'", `'${join(process.cwd(), 'ir/dsl.ts')}'`);
    writeFileSync(dsl, src);
    const r = rwkvc('compile', dsl, '--config', 'finch-tiny', '-o', join(tmp, 'bad'));
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/bad-model\.mts:\d+:\d+: matmul: input width 128 does not match weight \[128, 129\]/);
  });
});

describe('rwkvc gguf', () => {
  it('writes a GGUF file llama.cpp reads (checked in gguf.test.ts); a vocabulary too big for the model is one clear line', () => {
    const out = join(tmp, 'tiny.gguf');
    const r = rwkvc('gguf', '--model', join(FIXTURES, 'finch-tiny', 'model.pth'), '--weights', 'q8_0', '-o', out);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(out).subarray(0, 4).toString()).toBe('GGUF');
    // the 256 single bytes (ids 1..256, as the World vocabulary has them) and one id past the model's 256 rows
    const bytes = Array.from({ length: 256 }, (_, b) => `${b + 1} ${b < 128 ? '' : 'b'}'\\x${b.toString(16).padStart(2, '0')}' 1`);
    const vocab = write('vocab.txt', [...bytes, "300 'ab' 2"].join('\n') + '\n');
    const bad = rwkvc('gguf', '--model', join(FIXTURES, 'finch-tiny', 'model.pth'), '--vocab', vocab, '-o', join(tmp, 'bad.gguf'));
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/bad\.gguf: the vocabulary has 301 ids but the model's embedding has 256 rows/);
  });
});

function write(name: string, data: string): string {
  const p = join(tmp, name);
  writeFileSync(p, data);
  return p;
}
