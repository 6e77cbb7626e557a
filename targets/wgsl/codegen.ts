/**
 * WGSL codegen: a shader key (shaders.ts) → WGSL text, through the Handlebars templates in
 * kernels/*.wgsl.hbs. The templates hold the layout of each kernel; this module computes every value
 * they print (offsets, counts, expression text), so a template never does arithmetic.
 *
 * `renderShader` reads nothing but its key, which is what makes a key a sound pipeline cache key.
 * Templates are read from disk (Node). A browser runtime gets its shaders pre-rendered instead:
 * `emitWgsl` (here, in Node) → `loadWgslTarget(..., { shaders })`.
 */
import Handlebars from 'handlebars';
import { readFileSync } from 'node:fs';
import type { KernelPlan } from '../../kernels/plan.ts';
import { keyTitle, printGroupExprs, wkvView } from '../gpu/views.ts';
import { WGSL } from './dialect.ts';
import { wgslArrayElem, type WFormat } from '../gpu/formats.ts';
import { lowerPlan, type Limits, type LowerOptions, DEFAULT_LIMITS } from '../gpu/lower.ts';
import type { KernelSource, TargetCodegen } from '../target.ts';
import type { WgslArtifact } from './artifact.ts';
import { planPrograms } from '../../kernels/program.ts';
import {
  MM, TS_CHUNK, WG, keyString, paramFields, weightBindings, type ShaderKey,
} from '../gpu/keys.ts';

const hb = Handlebars.create();
const compile = (name: string) =>
  hb.compile(readFileSync(new URL(`./templates/${name}.wgsl.hbs`, import.meta.url), 'utf8'), { noEscape: true, strict: true });
for (const partial of ['header', 'weights', 'reduce', 'linear_groups']) hb.registerPartial(partial, compile(partial));

const TEMPLATES = {
  embed: compile('embed'),
  layernorm: compile('layernorm'),
  token_shift: compile('token_shift'),
  wkv: compile('wkv'),
  matvec: compile('linear'),
  matmul: compile('linear_tiled'),
} as const;
const TEMPLATE_FILE: Record<ShaderKey['kind'], string> = {
  embed: 'embed', layernorm: 'layernorm', token_shift: 'token_shift', wkv: 'wkv', matvec: 'linear', matmul: 'linear_tiled',
};

interface Binding { binding: number; name: string; elem: string; rw?: boolean }

/** The weight accessors `wN_4` / `wN_1` of the formats in use. */
const accessors = (fmts: WFormat[]) =>
  fmts.map((fmt, i) => ({ i, fmt, f32: fmt === 'f32', f16: fmt === 'f16', bf16: fmt === 'bf16', int8: fmt === 'int8', q4: fmt === 'q4_0' || fmt === 'q4_1', q4_0: fmt === 'q4_0' }));

const f32Bindings = (names: string[]): Binding[] => names.map((name, i) => ({ binding: 3 + i, name, elem: 'f32' }));
/** A state kernel's weights, then `st`: the state part, read_write (keys.ts). */
const stateBindings = (names: string[]): Binding[] => [...f32Bindings(names), { binding: 3 + names.length, name: 'st', elem: 'f32', rw: true }];


function renderShader(key: ShaderKey): string {
  const common = {
    title: keyTitle(key, 'workgroup'),
    template: TEMPLATE_FILE[key.kind],
    keyText: keyString(key),
    params: paramFields(key),
    helpers: [] as string[],
  };
  switch (key.kind) {
    case 'embed':
      return TEMPLATES.embed({
        ...common,
        bindings: [{ binding: 3, name: 'w0', elem: wgslArrayElem(key.fmt) }],
        weights: accessors([key.fmt]),
      });
    case 'layernorm':
      return TEMPLATES.layernorm({ ...common, bindings: f32Bindings(['vecs']), rms: !!key.rms, stats: key.rms ? 'rms_stats' : 'ln_stats' });
    case 'token_shift': {
      const mix0 = key.ln ? (key.rms ? 1 : 2) : 0;
      const S = key.outs;
      const pack = [...(key.ln ? (key.rms ? ['ln.w'] : ['ln.w', 'ln.b']) : []), ...Array.from({ length: S }, (_, s) => `mix${s}`), ...(key.lora ? ['mu_x'] : [])];
      const sd = key.lora ? S * key.lora.dim : 0;
      return TEMPLATES.token_shift({
        ...common,
        helpers: key.lora ? [WGSL.helpers.tanh_f32] : [],
        bindings: stateBindings(key.lora ? ['vecs', 'lora_a', 'lora_b'] : ['vecs']),
        packDoc: `[${pack.join(', ')}]`,
        ln: key.ln,
        rms: !!key.rms,
        stats: key.rms ? 'rms_stats' : 'ln_stats',
        batch: key.batch,
        lora: !!key.lora,
        mixAt: mix0,
        muAt: mix0 + S,
        dim: key.lora?.dim ?? 0,
        sd,
        passes: Math.ceil(sd / (WG / 8)),
        chunk: TS_CHUNK,
        outs: Array.from({ length: S }, (_, s) => ({ s })),
      });
    }
    case 'wkv': {
      return TEMPLATES.wkv({
        ...common,
        bindings: stateBindings(key.decay === 'lora' ? ['vecs', 'lora_b'] : ['vecs']),
        ...wkvView(key),
      });
    }
    case 'matvec': case 'matmul': {
      const { printed, helpers } = printGroupExprs(WGSL, key.groups, {
        x: (i) => `mem[p.g${i}_x + xi]`, pro: (i, k) => `mem[p.g${i}_pl${k} + xi]`, epi: (i, k) => `mem[p.g${i}_el${k} + yi]`,
      });
      const groups = key.groups.map((g, i) => ({ g: i, fmt: g.fmt, lanes: g.lanes ?? 0, ...printed[i], branch: i === 0 ? 'if' : '} else if' }));
      const view = {
        ...common,
        helpers: helpers.map((h) => WGSL.helpers[h]),
        bindings: key.groups.map((g, i) => ({ binding: 3 + i, name: `w${i}`, elem: wgslArrayElem(g.fmt) })),
        weights: accessors(key.groups.map((g) => g.fmt)),
        groups,
      };
      if (key.kind === 'matvec') {
        if (key.groups.some((g) => !g.lanes || WG % g.lanes)) throw new Error('matvec groups need lanes dividing 256');
        return TEMPLATES.matvec(view);
      }
      // The staging loops of linear_tiled are written for these sizes (32 tokens × 8 quads of x,
      // 64 rows × 4 octets of w per step, by 256 invocations).
      if (MM.BT !== 32 || MM.BO !== 64 || MM.BK !== 32 || WG !== 256) throw new Error('linear_tiled expects BT 32, BO 64, BK 32');
      return TEMPLATES.matmul({ ...view, bt: MM.BT, bo: MM.BO, bk: MM.BK, xtSize: MM.BK * MM.BT, wtSize: MM.BK * MM.BO });
    }
  }
}



export interface EmittedShader {
  key: string;
  code: string;
  /** The plan kernels (by name) that run this shader. */
  kernels: string[];
}

/**
 * Every distinct shader of a plan, for the given device limits (splitting depends on them): what
 * `--emit kernels` prints and what the runtime is handed pre-rendered.
 */
export function emitWgsl(plan: KernelPlan, limits: Limits = DEFAULT_LIMITS, lowering: LowerOptions = {}): EmittedShader[] {
  const byKey = new Map<string, EmittedShader>();
  for (const program of planPrograms(plan)) {
    for (const step of lowerPlan(plan, program, limits, { ...lowering, device: 'WebGPU device' }).steps) {
      if (step.kind !== 'dispatch') continue;
      const k = keyString(step.key);
      let e = byKey.get(k);
      if (!e) byKey.set(k, (e = { key: k, code: renderShader(step.key), kernels: [] }));
      if (!e.kernels.includes(step.kernel)) e.kernels.push(step.kernel);
    }
  }
  return [...byKey.values()];
}

/** The WGSL target's compile half: the plan's shaders rendered for the device's limits (capped by `limits`). */
export const codegen: TargetCodegen<WgslArtifact> = {
  emit(plan, opts = {}) {
    const limits = { ...DEFAULT_LIMITS };
    for (const k of Object.keys(limits) as (keyof Limits)[]) {
      const v = (opts.limits as Partial<Limits> | undefined)?.[k];
      if (v !== undefined) limits[k] = v;
    }
    const lowering: LowerOptions = opts.embedOnHost ? { embedOnHost: true } : {};
    const shaders = Object.fromEntries(emitWgsl(plan, limits, lowering).map((s) => [s.key, s.code]));
    return { format: 'rwkvc-wgsl', version: 2, limits, lowering, plan, shaders };
  },
  print(art, plan) {
    const src = new Map(planPrograms(plan).flatMap((p) => p.kernels.map((k) => [k.name, k.src] as const)));
    return emitWgsl(plan, art.limits, art.lowering).map((s): KernelSource => ({
      kernels: s.kernels,
      src: [...new Set(s.kernels.flatMap((k) => src.get(k.replace(/\[\d+\]$/, '')) ?? []))],
      title: s.code.split('\n')[0].replace(/^\/\/\s*/, ''),
      code: s.code,
    }));
  },
  files: (art) => ({ 'wgsl.json': JSON.stringify(art) }),
};
