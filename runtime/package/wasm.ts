/**
 * The generated package's one link to the WASM target's runtime: load a compiled artifact (the .wasm
 * modules and layout.json that compiler/emit-package.ts writes with the target's codegen) without the
 * compiler. If the WASM runtime's API changes, this file and the WASM section of emit-package.ts are
 * what follow it.
 */
import { loadWasmArtifact } from '../../targets/wasm/runtime.ts';
import type { WasmLayout } from '../../targets/wasm/layout.ts';
import { UserError } from '../../kernels/errors.ts';
import type { TargetLoader } from './model.ts';

export const loadWasmModel: TargetLoader = async (assets, weightsFor, o) => {
  const layout = assets.layout as Partial<WasmLayout> | null;
  if (!layout || layout.format !== 'rwkvc-wasm' || layout.version !== 1 || !layout.plan) {
    throw new UserError('package: layout.json is not an rwkvc WASM layout (v1)');
  }
  const art = { wasm: assets.wasm, wasmRelaxed: assets.wasmRelaxed, layout: layout as WasmLayout };
  return loadWasmArtifact(art, weightsFor(layout.plan), { threads: o.threads, relaxed: o.relaxed });
};
