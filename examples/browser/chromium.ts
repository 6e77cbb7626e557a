/**
 * Headless Chromium for pages run by tests and benchmarks: where the binary is (RWKVC_CHROMIUM overrides)
 * and the flags that give it WebGPU on SwiftShader and keep it quiet and off the network.
 */
import { existsSync } from 'node:fs';

/** Chromium binaries tried in order (RWKVC_CHROMIUM overrides). */
export const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/**
 * Flags that give headless Chromium WebGPU on SwiftShader with no GPU. `--enable-unsafe-webgpu` alone is
 * enough on Linux (Chromium 156); the SwiftShader ones pin the adapter so results do not depend on the host's
 * GPU. The rest keep a test browser quiet and off the network.
 */
export const CHROMIUM_WEBGPU_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
  '--use-webgpu-adapter=swiftshader',
];
export const CHROMIUM_QUIET_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--no-first-run',
  '--no-default-browser-check',
];

export function findChromium(): string | null {
  const override = process.env.RWKVC_CHROMIUM;
  if (override) return existsSync(override) ? override : null;
  return CHROMIUM_CANDIDATES.find((p) => existsSync(p)) ?? null;
}
