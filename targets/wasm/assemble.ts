/**
 * WAT text → WebAssembly binary with wabt (compile time only: the runtime loads the finished .wasm and never
 * imports this file). Its own module because wabt's start-up is most of what loading the WASM codegen costs.
 */
import wabtInit from 'wabt';

const wabt = await wabtInit();

/** Assemble WAT text to a binary. `relaxed` allows the relaxed-SIMD opcodes. */
export function assemble(text: string, relaxed = false): Uint8Array<ArrayBuffer> {
  const mod = wabt.parseWat('rwkvc.wat', text, {
    simd: true, threads: true, bulk_memory: true, sat_float_to_int: true, sign_extension: true,
    mutable_globals: true, multi_value: true, relaxed_simd: relaxed,
  });
  try {
    // wabt's own validate() ignores the feature flags (it rejects shared memories), so the binary is
    // checked by WebAssembly.validate where the engine supports the features instead.
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}
