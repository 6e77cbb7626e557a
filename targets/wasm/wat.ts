/**
 * The small WAT text helpers every kernel renderer shares (assembling the text is assemble.ts: loading wabt
 * takes 100–250 ms, which sizing a plan, `compile --emit plan`, never needs).
 */
/** An f32 literal WAT accepts: the shortest decimal of the f32 value, which parses back to it exactly. */
function f32lit(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  return String(Math.fround(v));
}

/** v128 constant with the same f32 in every lane. */
export const f4 = (v: number): string => {
  const s = f32lit(v);
  return `(v128.const f32x4 ${s} ${s} ${s} ${s})`;
};
/** v128 constant with the same i32 in every lane. */
export const i4 = (v: number): string => `(v128.const i32x4 ${v | 0} ${v | 0} ${v | 0} ${v | 0})`;
export const i32 = (v: number): string => `(i32.const ${v | 0})`;
export const get = (n: string): string => `(local.get $${n})`;
export const set = (n: string, v: string): string => `(local.set $${n} ${v})`;

/** Multiply-add a·b + c: one relaxed FMA where allowed, else mul then add (always the same order per variant). */
export const madd = (relaxed: boolean, a: string, b: string, c: string): string =>
  relaxed ? `(f32x4.relaxed_madd ${a} ${b} ${c})` : `(f32x4.add ${c} (f32x4.mul ${a} ${b}))`;

/** v128.load with a constant offset (the offset must be ≥ 0; addresses fit in i32). */
export const ld = (addr: string, off = 0): string => `(v128.load offset=${off} ${addr})`;
export const st = (addr: string, v: string, off = 0): string => `(v128.store offset=${off} ${addr} ${v})`;
export const splat = (addr: string, off = 0): string => `(v128.load32_splat offset=${off} ${addr})`;

/** Store the first n (0..4) lanes of v at addr, one f32 at a time (tails that must not spill past a row). */
export function storeLanes(addr: string, v: string, n: number): string {
  if (n >= 4) return st(addr, v);
  const out: string[] = [];
  for (let l = 0; l < n; l++) out.push(`(f32.store offset=${4 * l} ${addr} (f32x4.extract_lane ${l} ${v}))`);
  return out.join('\n');
}

/**
 * Locals of one function: declared once, by name. Renderers ask for what they need; the function
 * header lists them all.
 */
export class Locals {
  private decls = new Map<string, string>();
  add(name: string, type: 'i32' | 'f32' | 'v128' | 'i64'): string {
    const prev = this.decls.get(name);
    if (prev && prev !== type) throw new Error(`local $${name} declared as ${prev} and ${type}`);
    this.decls.set(name, type);
    return name;
  }
  /** Declare every local of `other` here too (same name, same type: shared). */
  merge(other: Locals): this {
    for (const [n, t] of other.decls) this.add(n, t as 'i32');
    return this;
  }
  text(): string {
    return [...this.decls].map(([n, t]) => `(local $${n} ${t})`).join(' ');
  }
}

/**
 * Address parameters of a kernel function: the body refers to `(local.get $aK)` instead of the
 * address itself, so the same kernel at another layer renders to the same text and is emitted once.
 */
export class Params {
  readonly values: number[] = [];
  private index = new Map<number, number>();
  /** WAT for the address `v` (an i32 parameter of the function). */
  addr(v: number): string {
    let k = this.index.get(v);
    if (k === undefined) {
      k = this.values.length;
      this.values.push(v);
      this.index.set(v, k);
    }
    return `(local.get $a${k})`;
  }
  header(): string {
    return this.values.map((_, k) => `(param $a${k} i32)`).join(' ');
  }
}
