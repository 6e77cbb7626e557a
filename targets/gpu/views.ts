/**
 * What the GPU targets' templates are handed for a kernel key, where it does not depend on the
 * dialect's syntax: the vector packs' slots and the linear groups' fused expressions.
 */
import { printExpr, type Dialect, type Printed } from './cprint.ts';
import type { ShaderKey } from './keys.ts';

/** The wkv kernel's f32 vector pack (lower.ts packs it in this order): each present part and its slot, in units of C. */
function wkvPack(key: Extract<ShaderKey, { kind: 'wkv' }>): { name: string; at: number }[] {
  const parts: [string, boolean][] = [['BASE', key.decay === 'lora'], ['U', key.u], ['NW', key.norm], ['NB', key.norm]];
  return parts.filter(([, present]) => present).map(([name], at) => ({ name, at }));
}

/** What a wkv template is told of its key, whatever the dialect. */
export function wkvView(key: Extract<ShaderKey, { kind: 'wkv' }>) {
  const packAt = wkvPack(key);
  return {
    packAt,
    at: Object.fromEntries(packAt.map((p) => [p.name, p.at])),
    packDoc: `[${packAt.map((x) => x.name).join(', ')}]`,
    headSize: key.headSize,
    lora: key.decay === 'lora',
    dim: key.loraDim,
    u: key.u,
    readFirst: key.order === 'read_first',
    kDecayScale: key.kDecayScale,
    norm: key.norm,
    gate: key.gate,
    batch: key.batch,
  };
}

/** A kernel key in one line (the first line of its generated code); `group` is the dialect's word for a thread group. */
export function keyTitle(key: ShaderKey, group: string): string {
  switch (key.kind) {
    case 'embed': return `embed: rows of a ${key.fmt} table`;
    case 'layernorm': return `layernorm: ${key.rms ? 'RMSNorm' : 'LN'} over the last axis, one ${group} per row`;
    case 'token_shift':
      return `token_shift: ${key.ln ? (key.rms ? 'RMSNorm + ' : 'LN + ') : ''}shift + ${key.outs} lerps${key.lora ? ` + ddlerp LoRA (D = ${key.lora.dim})` : ''}${key.batch ? ', batch' : ''}`;
    case 'wkv': return `wkv: ${key.order} recurrence, head size ${key.headSize}, ${key.decay} decay${key.batch ? ', batch' : ''}`;
    case 'matvec': case 'matmul':
      return `linear (${key.kind}): ${key.groups.length} group(s), ${key.groups.map((g) => g.fmt).join(' ')} weights`;
  }
}

/** How a template reads memory for group i: x and prologue load slot k at input xi, epilogue load slot k at output yi. */
export interface GroupReads {
  x(i: number): string;
  pro(i: number, slot: number): string;
  epi(i: number, slot: number): string;
}

/** Each linear group's prologue (value at input xi) and epilogue (of `acc`) printed in a dialect, and the helpers they call. */
export function printGroupExprs(d: Dialect, groups: Extract<ShaderKey, { kind: 'matvec' | 'matmul' }>['groups'], read: GroupReads) {
  const helpers = new Set<string>();
  const printed = groups.map((g, i) => {
    const pro: Printed = g.prologue
      ? printExpr(d, g.prologue, { x: read.x(i), load: (k) => read.pro(i, k) }, 'pv')
      : { lines: [], value: read.x(i), helpers: [] };
    const epi: Printed = g.epilogue
      ? printExpr(d, g.epilogue, { acc: 'acc', load: (k) => read.epi(i, k) }, 'ev')
      : { lines: [], value: 'acc', helpers: [] };
    for (const h of [...pro.helpers, ...epi.helpers]) helpers.add(h);
    return { pro, epi };
  });
  return { printed, helpers: [...helpers].sort() };
}
