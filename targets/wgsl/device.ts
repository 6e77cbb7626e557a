/**
 * One way to get a WebGPU device, in Node and in the browser.
 *
 * Browser (or any host with `navigator.gpu`): the page's WebGPU.
 * Node: Dawn from the `webgpu` npm package (imported dynamically, so browser bundles never pull it in).
 *   1. A hardware adapter through the system's Vulkan loader and drivers.
 *   2. If there is none, Chromium's SwiftShader (software Vulkan, `apt-get install chromium` ships
 *      `/usr/lib/chromium/libvk_swiftshader.so` and `vk_swiftshader_icd.json`): we point the Vulkan loader at
 *      it by setting `VK_ICD_FILENAMES` in `process.env` before creating the next Dawn instance. That is
 *      enough: the loader reads the variable each time an instance enumerates drivers, not at process start.
 *      If there is no system `libvulkan.so.1` (Debian's `libvulkan1` is not a dependency of chromium), we
 *      load Chromium's own copy of the loader, kept resident (RTLD_NODELETE), so Dawn's `dlopen` finds it by
 *      its soname.
 *   3. Otherwise a `UserError` that says how to get one.
 *
 * We ask for the adapter's largest storage-buffer, workgroup-memory and invocation limits and `shader-f16`
 * when the adapter has it; `limits` reports what the device was granted.
 *
 * `release()` destroys the device and drops our reference to the Dawn instance; Node then exits as soon as
 * its event loop is empty (Dawn keeps a process alive only while something still references the object that
 * `create()` returned; see https://issues.chromium.org/issues/387965810). Do not keep `gpu` around after it.
 */
import { UserError } from '../../kernels/errors.ts';

/** Where Chromium builds keep SwiftShader's Vulkan ICD (Debian/Ubuntu chromium, Google Chrome). */
const SWIFTSHADER_ICD_CANDIDATES = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
  '/opt/google/chrome/vk_swiftshader_icd.json',
];

export const SWIFTSHADER_NOTE = 'rwkvc: no hardware GPU adapter; using SwiftShader (software Vulkan)';

/** Limits raised to the adapter's maximum (when the adapter reports them). */
export const REQUESTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxUniformBufferBindingSize',
] as const;

/** Features turned on when the adapter has them. */
const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];

export interface GpuInfo {
  vendor: string;
  architecture: string;
  description: string;
  device: string;
  /** A CPU implementation (SwiftShader, lavapipe/llvmpipe, WARP) or the adapter says it is a fallback. */
  isSoftware: boolean;
  /** 'dawn-node' (the webgpu npm package) or 'navigator' (a browser's own WebGPU). */
  host: 'dawn-node' | 'navigator';
}

export interface AcquireGpuOptions {
  /** Passed to `requestAdapter`. */
  powerPreference?: GPUPowerPreference;
  /**
   * 'auto' (default): hardware first, SwiftShader if there is none.
   * 'only': SwiftShader straight away (Node; ignored in the browser), e.g. for reproducible numbers.
   * 'never': hardware or an error.
   */
  software?: 'auto' | 'only' | 'never';
  /** Features the caller cannot work without; missing ones raise a `UserError`. */
  requiredFeatures?: GPUFeatureName[];
  /** Where the one-line SwiftShader note goes (default: stderr, once per process). */
  log?: (line: string) => void;
}

export interface AcquiredGpu {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  info: GpuInfo;
  /** The limits the device was granted (all of them, as a plain object). */
  limits: Record<string, number>;
  features: ReadonlySet<string>;
  hasF16: boolean;
  /** Destroy the device and let go of the Dawn instance, so Node can exit. Idempotent. */
  release(): void;
}

type DawnModule = { create(options: string[]): GPU; globals: Record<string, unknown> };

const isNode = typeof process !== 'undefined' && !!process.versions?.node;
let notedSwiftShader = false;

export async function acquireGpu(opts: AcquireGpuOptions = {}): Promise<AcquiredGpu> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) {
    const adapter = await requestAdapter(nav.gpu, opts);
    if (adapter) return finish(nav.gpu, adapter, 'navigator', opts, () => {});
    throw new UserError(
      'WebGPU is present but gave no adapter: the GPU may be blocklisted or its driver missing; ' +
        'check chrome://gpu, update the GPU driver, or start Chrome with --enable-unsafe-webgpu',
    );
  }
  if (!isNode) {
    throw new UserError(
      'this browser has no WebGPU (navigator.gpu is missing): use a current Chrome, Edge or Safari, ' +
        'serve the page from https:// or http://localhost, or in Chrome enable chrome://flags/#enable-unsafe-webgpu',
    );
  }
  return acquireNode(opts);
}

async function acquireNode(opts: AcquireGpuOptions): Promise<AcquiredGpu> {
  const dawn = await loadDawn();
  const mode = opts.software ?? 'auto';
  const icdEnv = process.env.VK_ICD_FILENAMES ?? process.env.VK_DRIVER_FILES;
  const swiftshader = await swiftShaderIcd();
  // A Vulkan loader for Dawn to dlopen: the system's, or Chromium's beside SwiftShader.
  if (swiftshader && !hasSystemVulkanLoader()) await preloadVulkanLoader(dirOf(swiftshader));

  let held: GPU | null = null;
  const attempt = async (): Promise<GPUAdapter | null> => {
    held = dawn.create([]);
    return requestAdapter(held, opts);
  };

  // The user chose the Vulkan driver: use what it gives, nothing else.
  if (icdEnv) {
    const adapter = await attempt();
    if (adapter) return finish(held!, adapter, 'dawn-node', opts, () => (held = null));
    throw new UserError(
      `no WebGPU adapter from the Vulkan driver(s) in VK_ICD_FILENAMES=${icdEnv}: check that the file exists ` +
        `and names a loadable driver (for software Vulkan: apt-get install chromium, then ` +
        `VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json), or unset it to use the system's GPU driver`,
    );
  }

  let software: GPUAdapter | null = null;
  let softwareGpu: GPU | null = null;
  // On Linux with no Vulkan driver manifest at all, a hardware attempt can only fail (noisily, on stderr).
  if (mode !== 'only' && (await mayHaveVulkanDriver())) {
    const adapter = await attempt();
    if (adapter && !isSoftwareAdapter(adapter)) return finish(held!, adapter, 'dawn-node', opts, () => (held = null));
    // A CPU driver of the system's own (e.g. lavapipe): keep it in case SwiftShader is not there.
    if (adapter && mode !== 'never') [software, softwareGpu] = [adapter, held];
    held = null;
  }
  if (mode !== 'never' && swiftshader) {
    process.env.VK_ICD_FILENAMES = swiftshader;
    const adapter = await attempt();
    if (adapter) {
      if (mode === 'auto') note(opts, SWIFTSHADER_NOTE);
      software = softwareGpu = null;
      return finish(held!, adapter, 'dawn-node', opts, () => (held = null));
    }
    delete process.env.VK_ICD_FILENAMES;
  }
  if (software && softwareGpu) {
    held = softwareGpu;
    if (mode === 'auto') note(opts, `rwkvc: no hardware GPU adapter; using ${software.info?.description || 'a software Vulkan driver'}`);
    return finish(held, software, 'dawn-node', opts, () => (held = null));
  }
  throw new UserError(
    mode === 'never'
      ? 'no hardware GPU adapter: install your GPU\'s Vulkan driver and the Vulkan loader (Debian: apt-get install libvulkan1 mesa-vulkan-drivers, or the NVIDIA driver)'
      : 'no WebGPU adapter: no hardware GPU adapter was found and SwiftShader (software Vulkan) is not installed. ' +
          'Install a GPU driver with Vulkan support (and the Vulkan loader, libvulkan1), or install Chromium ' +
          '(Debian/Ubuntu: apt-get install chromium), which ships SwiftShader in /usr/lib/chromium/',
  );
}

async function loadDawn(): Promise<DawnModule> {
  const specifier = 'webgpu'; // a variable, so bundlers leave it alone
  let mod: DawnModule;
  try {
    mod = (await import(/* @vite-ignore */ specifier)) as DawnModule;
  } catch (e) {
    // name the package: a generated package does not depend on it, so a plain `npm install` does not add it
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && /'webgpu'/.test((e as Error).message))
      throw new UserError("target 'wgsl' in Node needs the `webgpu` npm package (Dawn for Node), which is not installed here: install the `webgpu` npm package (npm install webgpu)");
    throw new UserError(
      `cannot load the \`webgpu\` npm package (Dawn for Node): ${(e as Error).message.split('\n')[0]}; reinstall the \`webgpu\` npm package (npm install webgpu)`,
    );
  }
  // GPUBufferUsage, GPUMapMode, GPUShaderStage, ... as in a browser, for code that uses them.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  return mod;
}

async function requestAdapter(gpu: GPU, opts: AcquireGpuOptions): Promise<GPUAdapter | null> {
  return gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
}

async function finish(
  gpu: GPU,
  adapter: GPUAdapter,
  host: GpuInfo['host'],
  opts: AcquireGpuOptions,
  drop: () => void,
): Promise<AcquiredGpu> {
  const missing = (opts.requiredFeatures ?? []).filter((f) => !adapter.features.has(f));
  if (missing.length) {
    drop();
    throw new UserError(`the WebGPU adapter (${describe(adapter)}) lacks required feature(s): ${missing.join(', ')}`);
  }
  const requiredLimits: Record<string, number> = {};
  const adapterLimits = adapter.limits as unknown as Record<string, number | undefined>;
  for (const k of REQUESTED_LIMITS) {
    const v = adapterLimits[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const requiredFeatures = [
    ...new Set([...(opts.requiredFeatures ?? []), ...OPTIONAL_FEATURES.filter((f) => adapter.features.has(f))]),
  ];
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (e) {
    drop();
    throw new UserError(`could not open a WebGPU device on ${describe(adapter)}: ${(e as Error).message}`);
  }
  const i = adapter.info;
  const info: GpuInfo = {
    vendor: i?.vendor ?? '',
    architecture: i?.architecture ?? '',
    description: i?.description ?? '',
    device: i?.device ?? '',
    isSoftware: isSoftwareAdapter(adapter),
    host,
  };
  const limits: Record<string, number> = {};
  for (const k in device.limits) limits[k] = (device.limits as unknown as Record<string, number>)[k]!;
  let released = false;
  const result: AcquiredGpu = {
    gpu,
    adapter,
    device,
    info,
    limits,
    features: new Set(device.features),
    hasF16: device.features.has('shader-f16'),
    release() {
      if (released) return;
      released = true;
      device.destroy();
      drop();
      // Let go of the Dawn instance from this object too: the caller may keep `result` alive.
      (result as { gpu: GPU | null }).gpu = null;
    },
  };
  return result;
}

function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  const i = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  if (i?.isFallbackAdapter || (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter) return true;
  const text = `${i?.vendor} ${i?.architecture} ${i?.description} ${i?.device}`;
  return /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|warp/i.test(text);
}

function describe(adapter: GPUAdapter): string {
  const i = adapter.info;
  return [i?.vendor, i?.architecture, i?.description].filter(Boolean).join(' / ') || 'unknown adapter';
}

function note(opts: AcquireGpuOptions, line: string): void {
  if (opts.log) return opts.log(line);
  if (notedSwiftShader) return;
  notedSwiftShader = true;
  process.stderr.write(line + '\n');
}

function dirOf(file: string): string {
  return file.slice(0, file.lastIndexOf('/'));
}

/** The first SwiftShader ICD json that exists, with its driver beside it (null in the browser). */
export async function swiftShaderIcd(): Promise<string | null> {
  if (!isNode) return null;
  const fs = await nodeBuiltin<typeof import('node:fs')>('node:fs');
  for (const p of SWIFTSHADER_ICD_CANDIDATES) {
    if (fs.existsSync(p) && fs.existsSync(`${dirOf(p)}/libvk_swiftshader.so`)) return p;
  }
  return null;
}

/** False only on Linux when no Vulkan driver manifest (ICD json) is installed where the loader looks. */
async function mayHaveVulkanDriver(): Promise<boolean> {
  if (process.platform !== 'linux') return true;
  const fs = await nodeBuiltin<typeof import('node:fs')>('node:fs');
  const env = process.env;
  const dataDirs = [env.XDG_DATA_HOME ?? `${env.HOME ?? ''}/.local/share`, ...(env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(':')];
  const configDirs = [env.XDG_CONFIG_HOME ?? `${env.HOME ?? ''}/.config`, ...(env.XDG_CONFIG_DIRS ?? '/etc/xdg').split(':'), '/etc'];
  for (const base of [...configDirs, ...dataDirs, '/usr/share', '/usr/local/share']) {
    try {
      if (fs.readdirSync(`${base}/vulkan/icd.d`).some((f) => f.endsWith('.json'))) return true;
    } catch {
      // not there
    }
  }
  return false;
}

/** Whether `dlopen("libvulkan.so.1")` finds a loader (probing with Node's own dlopen; it is closed again). */
function hasSystemVulkanLoader(): boolean {
  if (process.platform !== 'linux') return true;
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, 'libvulkan.so.1');
    return true;
  } catch (e) {
    // Found and loaded, but not a Node addon: that is the "yes".
    return /self-register/i.test((e as Error).message);
  }
}

/** Load `dir/libvulkan.so.1` for good (RTLD_GLOBAL | RTLD_NODELETE), so a later dlopen by soname finds it. */
async function preloadVulkanLoader(dir: string): Promise<void> {
  const fs = await nodeBuiltin<typeof import('node:fs')>('node:fs');
  const os = await nodeBuiltin<typeof import('node:os')>('node:os');
  const lib = `${dir}/libvulkan.so.1`;
  if (!fs.existsSync(lib)) return;
  const RTLD_NODELETE = 0x1000; // glibc's value; os.constants.dlopen does not list it
  const { RTLD_NOW, RTLD_GLOBAL } = os.constants.dlopen as Record<string, number>;
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, lib, RTLD_NOW! | RTLD_GLOBAL! | RTLD_NODELETE);
  } catch {
    // "did not self-register" is expected: Node dlcloses it, but RTLD_NODELETE keeps it loaded.
  }
}

/** A Node built-in, imported through a variable so browser bundlers do not try to resolve it. */
async function nodeBuiltin<T>(id: string): Promise<T> {
  return (await import(/* @vite-ignore */ id)) as T;
}
