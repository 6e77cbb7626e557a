/**
 * bench/wasm-memory64.ts: the memory64 rewrite of the real decode matvec gives bit-identical outputs to
 * the i32 module (f32, int8, q4_0; two tiles of rows, so panel offsets past the first tile are used), and
 * the rewrite refuses a pointer in an operation it does not know instead of leaving it 32-bit.
 */
import { describe, expect, it } from 'vitest';
import { enableMemory64, matvecOnce, tileError, toMemory64, type KernelCase } from '../bench/wasm-memory64.ts';

enableMemory64();
const probe = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 5, 3, 1, 4, 1]); // (memory i64 1)
const why = WebAssembly.validate(probe) ? '' : `this engine (Node ${process.version}) has no memory64 even with --experimental-wasm-memory64`;
if (why) console.log(`skipped: ${why}`);

describe('bench/wasm-memory64', () => {
  it.skipIf(!!why)('i32 and i64 modules give bit-identical matvec outputs', () => {
    for (const dtype of ['f32', 'int8', 'q4_0'] as const) {
      const c: KernelCase = { dtype, O: 1536, I: 768 };
      const y32 = matvecOnce(c, false, false), y64 = matvecOnce(c, false, true);
      expect(new Uint32Array(y64.buffer)).toEqual(new Uint32Array(y32.buffer));
      expect(tileError(c, y32)).toBeLessThan(dtype === 'f32' ? 1e-6 : 1e-4);
    }
  });

  it('rewrites pointer arithmetic to i64 and refuses a pointer it cannot place', () => {
    const out = toMemory64(`(module (import "env" "memory" (memory 1 65536 shared))
(func $f (param $a0 i32) (param $n i32) (local $p i32)
  (local.set $p (i32.add (local.get $a0) (i32.mul (local.get $n) (i32.const 64))))
  (drop (v128.load offset=16 (local.get $p)))))`).text;
    expect(out).toContain('(memory i64 1 262144 shared)');
    expect(out).toContain('(param $a0 i64)');
    expect(out).toContain('(local $p i64)');
    expect(out).toContain('(local.set $p (i64.add (local.get $a0) (i64.mul (i64.extend_i32_u (local.get $n)) (i64.const 64))))');
    expect(() => toMemory64(`(module (func $f (param $a0 i32) (drop (i32.mul (local.get $a0) (i32.const 2)))))`)).toThrow(/pointer .* used by i32.mul/);
  });
});
