// libcuda_sim.cpp — TEST INFRASTRUCTURE: a libcuda-shaped shared library that runs kernels on the CPU.
//
// It exports the subset of the CUDA driver API that targets/cuda/ffi.ts binds, with the real signatures
// and result codes, so the runtime loads it exactly as it loads libcuda.so.1. The kernels are not read
// from the PTX handed to cuModuleLoadData: they are the generated .cu compiled into this library with
// cuda_sim.h (RWKVC_SIM_KERNEL registers each one), and cuModuleGetFunction finds them by name.
//
// Launches run synchronously on the calling thread (a stream is in-order anyway): blocks one after
// another, a block's threads as fibers switched at barriers (see cuda_sim.h). Stream capture records the
// launches with copies of their arguments; a graph launch replays them. Device memory is host memory
// (malloc, 256-byte aligned); every access through the prelude's accessors is checked against the live
// allocations and, when counting is on, counted per byte and per launch (rwkvc_sim_* below).
#include "cuda_sim.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#if defined(RWKVC_SIM_THREADS)
#include <condition_variable>
#include <mutex>
#include <thread>
#elif !defined(__x86_64__)
#include <ucontext.h>
#endif

extern "C" {
typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st* CUcontext;
typedef struct CUmod_st* CUmodule;
typedef struct CUfunc_st* CUfunction;
typedef struct CUstream_st* CUstream;
typedef struct CUgraph_st* CUgraph;
typedef struct CUgraphExec_st* CUgraphExec;
}

enum : int {
  CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_OUT_OF_MEMORY = 2, CUDA_ERROR_NOT_INITIALIZED = 3,
  CUDA_ERROR_NO_DEVICE = 100, CUDA_ERROR_INVALID_DEVICE = 101, CUDA_ERROR_INVALID_IMAGE = 200, CUDA_ERROR_INVALID_CONTEXT = 201,
  CUDA_ERROR_INVALID_HANDLE = 400, CUDA_ERROR_NOT_FOUND = 500, CUDA_ERROR_ILLEGAL_ADDRESS = 700,
  CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701, CUDA_ERROR_LAUNCH_FAILED = 719, CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901,
  CUDA_ERROR_NOT_SUPPORTED = 801,
};

RWKVC_SIM_TLS uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim, gridDim;

namespace rwkvc_sim {
RWKVC_SIM_TLS unsigned cur_tid;
unsigned cur_nthreads;
uint64_t xchg[1024];

// ---- errors ---------------------------------------------------------------------------------------------
static std::string g_error;         // the last launch failure, in words
static int g_sticky = CUDA_SUCCESS;  // like a real context: a failed kernel poisons later calls
static std::string g_kernel;         // the kernel running

// ---- allocations and counting --------------------------------------------------------------------------
struct Alloc {
  uintptr_t base;
  size_t size;
  std::vector<uint32_t> reads, writes;  // per byte, since the last reset (when counting)
  std::vector<uint32_t> wlaunch;        // per byte: the launch that last wrote it
};
static std::map<uintptr_t, std::unique_ptr<Alloc>> g_allocs;
static Alloc* g_last = nullptr;
static bool g_counting = false;
static uint32_t g_launch_id = 0;

struct LaunchRecord {
  std::string kernel;
  unsigned grid[3], block[3];
  uint64_t read, written, rewritten;  // bytes; rewritten: bytes this launch wrote more than once
};
static std::vector<LaunchRecord> g_records;

[[noreturn]] void trap(const char* what) { throw std::string(what); }

static Alloc* find(const void* p, size_t n) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (g_last && a >= g_last->base && a + n <= g_last->base + g_last->size) return g_last;
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  Alloc* al = it->second.get();
  if (a + n > al->base + al->size) return nullptr;
  return g_last = al;
}

#if defined(RWKVC_SIM_THREADS)
static std::mutex g_access_mu;  // counters and the lookup cache are shared by the block's OS threads
#endif
static void access(const void* p, size_t n, size_t align, bool write) {
#if defined(RWKVC_SIM_THREADS)
  std::lock_guard<std::mutex> lk(g_access_mu);
#endif
  char msg[256];
  if (reinterpret_cast<uintptr_t>(p) % align) {
    snprintf(msg, sizeof msg, "misaligned %zu-byte %s at %p (thread %u of block %u,%u,%u)", n, write ? "store" : "load", p,
             cur_tid, blockIdx.x, blockIdx.y, blockIdx.z);
    trap(msg);
  }
  Alloc* al = find(p, n);
  if (!al) {
    // Name the allocation below the address, if any: "<k> bytes past the end of a <size>-byte allocation".
    char near[96] = "";
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = g_allocs.upper_bound(a);
    if (it != g_allocs.begin()) {
      --it;
      const Alloc& b = *it->second;
      snprintf(near, sizeof near, ", offset %zu of a %zu-byte allocation", size_t(a - b.base), b.size);
    }
    snprintf(msg, sizeof msg, "%zu-byte %s at %p outside every allocation%s (thread %u of block %u,%u,%u)", n,
             write ? "store" : "load", p, near, cur_tid, blockIdx.x, blockIdx.y, blockIdx.z);
    trap(msg);
  }
  if (!g_counting) return;
  size_t off = reinterpret_cast<uintptr_t>(p) - al->base;
  LaunchRecord& r = g_records.back();
  if (write) {
    r.written += n;
    for (size_t i = off; i < off + n; i++) {
      al->writes[i]++;
      if (al->wlaunch[i] == g_launch_id) r.rewritten++;
      al->wlaunch[i] = g_launch_id;
    }
  } else {
    r.read += n;
    for (size_t i = off; i < off + n; i++) al->reads[i]++;
  }
}
void on_read(const void* p, size_t n, size_t align) { access(p, n, align, false); }
void on_write(const void* p, size_t n, size_t align) { access(p, n, align, true); }

static void ensure_counters(Alloc* a) {
  if (a->reads.size() != a->size) {
    a->reads.assign(a->size, 0);
    a->writes.assign(a->size, 0);
    a->wlaunch.assign(a->size, 0);
  }
}

// ---- kernels ---------------------------------------------------------------------------------------------
struct Kernel {
  std::string name;
  void* fn;
  Invoker invoke;
  std::vector<size_t> sizes, aligns;
};
static std::vector<Kernel>& kernels() {
  static std::vector<Kernel> k;  // filled by static initialisers at dlopen
  return k;
}
void register_kernel(const char* name, void* fn, Invoker invoke, int nargs, const size_t* sizes, const size_t* aligns) {
  kernels().push_back(Kernel{name, fn, invoke, std::vector<size_t>(sizes, sizes + nargs), std::vector<size_t>(aligns, aligns + nargs)});
}

// ---- a block's threads -------------------------------------------------------------------------------
// Each thread of the block runs until it waits at a barrier (__syncthreads: the whole block; a shuffle,
// vote or __syncwarp: its warp's lanes in the mask) or returns. When no thread is running, every group
// whose live threads are all waiting is released (release_waiting); none releasable is a deadlock.
//
// Default: the threads are fibers on the launching thread (x86-64: a minimal switch of the callee-saved
// registers, MXCSR and the x87 control word; elsewhere ucontext), run in order: deterministic, and ~50×
// faster than OS threads on the fixtures. -DRWKVC_SIM_THREADS: the threads are real OS threads (a pool
// reused across blocks) meeting at the same barriers under a mutex; same results, for checking that the
// kernels do not depend on the fibers' run order.
enum State : uint8_t { READY, WAIT_BLOCK, WAIT_WARP, DONE };
struct Slot {
  State state = READY;
  unsigned mask = 0;
};
static std::vector<Slot> g_slots;
static void** g_args;
static Invoker g_invoke;
static void* g_fn;
static std::string g_fiber_error;
/** Run blocks, and a block's fibers, last first (rwkvc_sim_order): results must not change. */
static bool g_reverse = false;

/** Release what can be released; returns how many threads were released. */
static unsigned release_waiting(unsigned n) {
  unsigned live = 0, at_block = 0, released = 0;
  for (unsigned t = 0; t < n; t++) {
    if (g_slots[t].state != DONE) live++;
    if (g_slots[t].state == WAIT_BLOCK) at_block++;
  }
  if (live && at_block == live) {
    for (unsigned t = 0; t < n; t++)
      if (g_slots[t].state == WAIT_BLOCK) g_slots[t].state = READY;
    return live;
  }
  for (unsigned w0 = 0; w0 < n; w0 += 32) {
    unsigned mask = 0, end = std::min(n, w0 + 32);
    for (unsigned t = w0; t < end; t++)
      if (g_slots[t].state == WAIT_WARP) mask |= g_slots[t].mask;
    if (!mask) continue;
    bool all = true;
    for (unsigned t = w0; t < end; t++) {
      const Slot& f = g_slots[t];
      if ((mask >> (t - w0) & 1u) && f.state != DONE && f.state != WAIT_WARP) all = false;
    }
    if (!all) continue;
    for (unsigned t = w0; t < end; t++)
      if (g_slots[t].state == WAIT_WARP) { g_slots[t].state = READY; released++; }
  }
  return released;
}

static void deadlock(unsigned n) {
  unsigned live = 0, at_block = 0;
  for (unsigned t = 0; t < n; t++) {
    if (g_slots[t].state != DONE) live++;
    if (g_slots[t].state == WAIT_BLOCK) at_block++;
  }
  char msg[200];
  snprintf(msg, sizeof msg, "deadlock in block %u,%u,%u: %u of %u live threads wait at __syncthreads, the rest at a warp barrier",
           blockIdx.x, blockIdx.y, blockIdx.z, at_block, live);
  g_fiber_error = msg;
  for (unsigned t = 0; t < n; t++)
    if (g_slots[t].state != DONE) g_slots[t].state = READY;  // they resume, see the error and unwind
}

/** The kernel for the current thread; its failure in words, or "". */
static std::string run_kernel_body() {
  try {
    g_invoke(g_fn, g_args);
  } catch (const std::string& e) {
    return e;
  }
  return "";
}

static void set_thread_index(unsigned t) {
  cur_tid = t;
  unsigned bx = blockDim.x, by = blockDim.y;
  threadIdx = uint3{t % bx, (t / bx) % by, t / (bx * by)};
}

#if !defined(RWKVC_SIM_THREADS)
constexpr size_t STACK = 256 << 10;
struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;
#if !defined(__x86_64__)
  ucontext_t ctx;
#endif
};
static std::vector<Fiber> g_fibers;
static void* g_sched_sp;
#if !defined(__x86_64__)
static ucontext_t g_sched_ctx;
#endif

#if defined(__x86_64__)
extern "C" void rwkvc_sim_switch(void** save, void* to);
asm(R"(
  .text
  .p2align 4
  .type rwkvc_sim_switch,@function
rwkvc_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size rwkvc_sim_switch, .-rwkvc_sim_switch
)");
#endif

static void to_scheduler(Fiber& f) {
#if defined(__x86_64__)
  rwkvc_sim_switch(&f.sp, g_sched_sp);
#else
  swapcontext(&f.ctx, &g_sched_ctx);
#endif
}

static void fiber_main() {
  std::string e = run_kernel_body();
  if (!e.empty() && g_fiber_error.empty()) g_fiber_error = e;
  g_slots[cur_tid].state = DONE;
  to_scheduler(g_fibers[cur_tid]);
  __builtin_unreachable();
}

static void fiber_start(Fiber& f) {
  if (!f.stack) f.stack = static_cast<char*>(std::aligned_alloc(64, STACK));
#if defined(__x86_64__)
  // The frame rwkvc_sim_switch pops: control words, r15 … rbp, then the "return" into fiber_main, which
  // must see the stack as a call leaves it (rsp ≡ 8 mod 16 at entry): sp ≡ 8 mod 16.
  uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + STACK) & ~uintptr_t(15);
  uint64_t* s = reinterpret_cast<uint64_t*>(top - 72);
  uint32_t cw[2] = {0x1f80u, 0x037fu};  // MXCSR and x87 control word defaults
  std::memcpy(&s[0], cw, 8);
  for (int i = 1; i <= 6; i++) s[i] = 0;
  s[7] = reinterpret_cast<uint64_t>(&fiber_main);
  s[8] = 0;  // fiber_main's (never used) return address
  f.sp = s;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = STACK;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiber_main, 0);
#endif
}

static void resume(unsigned t) {
  set_thread_index(t);
#if defined(__x86_64__)
  rwkvc_sim_switch(&g_sched_sp, g_fibers[t].sp);
#else
  swapcontext(&g_sched_ctx, &g_fibers[t].ctx);
#endif
}

void barrier(int kind, unsigned mask) {
  const unsigned me = cur_tid;
  g_slots[me].state = kind == 0 ? WAIT_BLOCK : WAIT_WARP;
  g_slots[me].mask = mask;
  to_scheduler(g_fibers[me]);
  if (!g_fiber_error.empty()) throw std::string("aborted");  // another thread failed: unwind this one
}

/** Run one block to completion; returns an error message, or "". */
static std::string run_block(unsigned n) {
  if (g_fibers.size() < n) g_fibers.resize(n);
  g_slots.assign(n, Slot{});
  for (unsigned t = 0; t < n; t++) fiber_start(g_fibers[t]);
  g_fiber_error.clear();
  for (;;) {
    for (unsigned i = 0; i < n; i++) {
      const unsigned t = g_reverse ? n - 1 - i : i;
      if (g_slots[t].state == READY) resume(t);
    }
    if (!g_fiber_error.empty()) {
      for (unsigned t = 0; t < n; t++)
        if (g_slots[t].state != DONE) { g_slots[t].state = READY; resume(t); }
      return g_fiber_error;
    }
    bool done = true;
    for (unsigned t = 0; t < n; t++) done = done && g_slots[t].state == DONE;
    if (done) return "";
    if (!release_waiting(n)) deadlock(n);
  }
}
#else  // RWKVC_SIM_THREADS
static std::mutex g_mu;
static std::condition_variable g_tcv[1024], g_main_cv;  // one per thread: a release wakes only the released
static std::vector<std::thread> g_pool;
static uint64_t g_epoch = 0;
static unsigned g_n = 0, g_running = 0;

/** Under g_mu, when a thread stops running: release the next groups, or declare a deadlock. */
static void stopped() {
  if (--g_running) return;
  bool done = true;
  for (unsigned t = 0; t < g_n; t++) done = done && g_slots[t].state == DONE;
  if (done) { g_main_cv.notify_all(); return; }
  unsigned r = g_fiber_error.empty() ? release_waiting(g_n) : 0;
  if (!r) {
    if (g_fiber_error.empty()) deadlock(g_n);
    else for (unsigned t = 0; t < g_n; t++) if (g_slots[t].state != DONE) g_slots[t].state = READY;
    r = 0;
    for (unsigned t = 0; t < g_n; t++) r += g_slots[t].state == READY;
  }
  g_running = r;
  for (unsigned t = 0; t < g_n; t++)
    if (g_slots[t].state == READY) g_tcv[t].notify_one();
}

void barrier(int kind, unsigned mask) {
  std::unique_lock<std::mutex> lk(g_mu);
  const unsigned me = cur_tid;
  g_slots[me].state = kind == 0 ? WAIT_BLOCK : WAIT_WARP;
  g_slots[me].mask = mask;
  stopped();
  g_tcv[me].wait(lk, [&] { return g_slots[me].state == READY; });
  if (!g_fiber_error.empty()) throw std::string("aborted");
}

static void worker(unsigned t) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(g_mu);
      g_tcv[t].wait(lk, [&] { return g_epoch != seen && t < g_n; });
      seen = g_epoch;
    }
    set_thread_index(t);
    std::string e = run_kernel_body();
    std::lock_guard<std::mutex> lk(g_mu);
    if (!e.empty() && g_fiber_error.empty()) g_fiber_error = e;
    g_slots[t].state = DONE;
    stopped();
  }
}

static std::string run_block(unsigned n) {
  std::unique_lock<std::mutex> lk(g_mu);
  while (g_pool.size() < n) { g_pool.emplace_back(worker, unsigned(g_pool.size())); g_pool.back().detach(); }
  g_slots.assign(n, Slot{});
  g_fiber_error.clear();
  g_n = n;
  g_running = n;
  g_epoch++;
  for (unsigned t = 0; t < n; t++) g_tcv[t].notify_one();
  g_main_cv.wait(lk, [&] {
    for (unsigned t = 0; t < n; t++) if (g_slots[t].state != DONE) return false;
    return true;
  });
  g_n = 0;
  return g_fiber_error;
}
#endif

// ---- launches ------------------------------------------------------------------------------------------------
struct Launch {
  Kernel* k;
  unsigned grid[3], block[3], smem;
  std::vector<std::vector<unsigned char>> args;  // copies of each argument's bytes
};

static int execute(Launch& L) {
  if (g_sticky) return g_sticky;
  unsigned n = L.block[0] * L.block[1] * L.block[2];
  if (n == 0 || n > 1024 || L.grid[0] * L.grid[1] * L.grid[2] == 0) return CUDA_ERROR_INVALID_VALUE;
  std::vector<void*> ptrs;
  for (auto& a : L.args) ptrs.push_back(a.data());
  g_args = ptrs.data();
  g_invoke = L.k->invoke;
  g_fn = L.k->fn;
  g_kernel = L.k->name;
  g_launch_id++;
  if (g_counting)
    g_records.push_back(LaunchRecord{L.k->name, {L.grid[0], L.grid[1], L.grid[2]}, {L.block[0], L.block[1], L.block[2]}, 0, 0, 0});
  blockDim = dim3(L.block[0], L.block[1], L.block[2]);
  gridDim = dim3(L.grid[0], L.grid[1], L.grid[2]);
  cur_nthreads = n;
  const uint64_t nb = uint64_t(L.grid[0]) * L.grid[1] * L.grid[2];
  for (uint64_t i = 0; i < nb; i++) {
    const uint64_t b = g_reverse ? nb - 1 - i : i;
    const unsigned x = unsigned(b % L.grid[0]), y = unsigned(b / L.grid[0] % L.grid[1]), z = unsigned(b / (uint64_t(L.grid[0]) * L.grid[1]));
    blockIdx = uint3{x, y, z};
    std::string err = run_block(n);
    if (!err.empty()) {
      char where[96];
      snprintf(where, sizeof where, " (kernel %s, block %u,%u,%u)", L.k->name.c_str(), x, y, z);
      g_error = err + where;
      g_sticky = CUDA_ERROR_LAUNCH_FAILED;
      return g_sticky;
    }
  }
  return CUDA_SUCCESS;
}

struct Stream {
  bool capturing = false;
  std::vector<Launch>* capture = nullptr;
};
struct Graph {
  std::vector<Launch> launches;
};
static bool g_init = false;
static int g_ctx_dummy;
static int g_mod_dummy;
static std::string g_module_image;  // the last image cuModuleLoadData saw (the FFI test reads it back)

static int launch(Kernel* k, const unsigned g[3], const unsigned b[3], unsigned smem, Stream* s, void** params, void** extra) {
  if (g_sticky) return g_sticky;
  Launch L{k, {g[0], g[1], g[2]}, {b[0], b[1], b[2]}, smem, {}};
  size_t na = k->sizes.size();
  if (params) {
    for (size_t i = 0; i < na; i++) {
      if (!params[i]) return CUDA_ERROR_INVALID_VALUE;
      auto* p = static_cast<unsigned char*>(params[i]);
      L.args.emplace_back(p, p + k->sizes[i]);
    }
  } else if (extra) {
    // CU_LAUNCH_PARAM_BUFFER_POINTER (1), CU_LAUNCH_PARAM_BUFFER_SIZE (2), CU_LAUNCH_PARAM_END (0)
    unsigned char* buf = nullptr;
    size_t size = 0;
    for (size_t i = 0; extra[i]; i += 2) {
      if (extra[i] == reinterpret_cast<void*>(1)) buf = static_cast<unsigned char*>(extra[i + 1]);
      else if (extra[i] == reinterpret_cast<void*>(2)) size = *static_cast<size_t*>(extra[i + 1]);
      else return CUDA_ERROR_INVALID_VALUE;
    }
    size_t off = 0;
    for (size_t i = 0; i < na; i++) {
      off = (off + k->aligns[i] - 1) / k->aligns[i] * k->aligns[i];
      if (!buf || off + k->sizes[i] > size) return CUDA_ERROR_INVALID_VALUE;
      L.args.emplace_back(buf + off, buf + off + k->sizes[i]);
      off += k->sizes[i];
    }
  } else if (na) return CUDA_ERROR_INVALID_VALUE;
  if (s && s->capturing) {
    s->capture->push_back(std::move(L));
    return CUDA_SUCCESS;
  }
  return execute(L);
}
}  // namespace rwkvc_sim

using namespace rwkvc_sim;

// ---- the driver API ---------------------------------------------------------------------------------------
#define SIM_API extern "C" __attribute__((visibility("default")))
#define NEED_INIT() do { if (!g_init) return CUDA_ERROR_NOT_INITIALIZED; } while (0)

SIM_API CUresult cuInit(unsigned flags) {
  if (flags) return CUDA_ERROR_INVALID_VALUE;
  // RWKVC_SIM_NO_DEVICE=1: behave as a driver on a machine without a GPU (tests of that message)
  const char* none = std::getenv("RWKVC_SIM_NO_DEVICE");
  if (none && std::strcmp(none, "1") == 0) return CUDA_ERROR_NO_DEVICE;
  g_init = true;
  return CUDA_SUCCESS;
}
SIM_API CUresult cuDriverGetVersion(int* v) { if (!v) return CUDA_ERROR_INVALID_VALUE; *v = 13000; return CUDA_SUCCESS; }
SIM_API CUresult cuDeviceGetCount(int* n) { NEED_INIT(); if (!n) return CUDA_ERROR_INVALID_VALUE; *n = 1; return CUDA_SUCCESS; }
SIM_API CUresult cuDeviceGet(CUdevice* d, int ordinal) {
  NEED_INIT();
  if (!d) return CUDA_ERROR_INVALID_VALUE;
  if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
  *d = 0;
  return CUDA_SUCCESS;
}
SIM_API CUresult cuDeviceGetName(char* name, int len, CUdevice d) {
  NEED_INIT();
  if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(name, size_t(len), "%s", "rwkvc CUDA emulator (CPU)");
  return CUDA_SUCCESS;
}
SIM_API CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice d) {
  NEED_INIT();
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  *bytes = size_t(4) << 30;
  return CUDA_SUCCESS;
}
SIM_API CUresult cuDeviceGetAttribute(int* v, int attrib, CUdevice d) {
  NEED_INIT();
  if (!v) return CUDA_ERROR_INVALID_VALUE;
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  switch (attrib) {
    case 1: *v = 1024; break;                       // MAX_THREADS_PER_BLOCK
    case 2: case 3: *v = 1024; break;               // MAX_BLOCK_DIM_X/Y
    case 4: *v = 64; break;                         // MAX_BLOCK_DIM_Z
    case 5: *v = 0x7fffffff; break;                 // MAX_GRID_DIM_X
    case 6: case 7: *v = 65535; break;              // MAX_GRID_DIM_Y/Z
    case 8: *v = 48 << 10; break;                   // MAX_SHARED_MEMORY_PER_BLOCK
    case 10: *v = 32; break;                        // WARP_SIZE
    case 13: *v = 1000000; break;                   // CLOCK_RATE (kHz)
    case 16: *v = 1; break;                         // MULTIPROCESSOR_COUNT
    case 36: *v = 1000000; break;                   // MEMORY_CLOCK_RATE (kHz)
    case 37: *v = 64; break;                        // GLOBAL_MEMORY_BUS_WIDTH
    case 38: *v = 1 << 20; break;                   // L2_CACHE_SIZE
    case 75: *v = 8; break;                         // COMPUTE_CAPABILITY_MAJOR
    case 76: *v = 0; break;                         // COMPUTE_CAPABILITY_MINOR
    case 97: *v = 163 << 10; break;                 // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}
SIM_API CUresult cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice d) {
  NEED_INIT();
  if (!c) return CUDA_ERROR_INVALID_VALUE;
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  *c = reinterpret_cast<CUcontext>(&g_ctx_dummy);
  return CUDA_SUCCESS;
}
SIM_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) { NEED_INIT(); return d == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE; }
SIM_API CUresult cuCtxSetCurrent(CUcontext c) {
  NEED_INIT();
  return c == nullptr || c == reinterpret_cast<CUcontext>(&g_ctx_dummy) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}
SIM_API CUresult cuCtxSynchronize() { NEED_INIT(); return g_sticky; }

SIM_API CUresult cuModuleLoadData(CUmodule* m, const void* image) {
  NEED_INIT();
  if (!m || !image) return CUDA_ERROR_INVALID_VALUE;
  g_module_image = static_cast<const char*>(image);
  if (g_module_image.find(".version") == std::string::npos && g_module_image.find("rwkvc-sim") == std::string::npos)
    return CUDA_ERROR_INVALID_IMAGE;  // neither PTX nor the emulator's placeholder
  *m = reinterpret_cast<CUmodule>(&g_mod_dummy);
  return CUDA_SUCCESS;
}
SIM_API CUresult cuModuleUnload(CUmodule m) { NEED_INIT(); return m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE; }
SIM_API CUresult cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
  NEED_INIT();
  if (!f || !m || !name) return CUDA_ERROR_INVALID_VALUE;
  for (auto& k : kernels())
    if (k.name == name) { *f = reinterpret_cast<CUfunction>(&k); return CUDA_SUCCESS; }
  return CUDA_ERROR_NOT_FOUND;
}
SIM_API CUresult cuFuncSetAttribute(CUfunction f, int attrib, int value) {
  NEED_INIT();
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  if (attrib == 8 /* MAX_DYNAMIC_SHARED_SIZE_BYTES */ && (value < 0 || value > (163 << 10))) return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

SIM_API CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
  NEED_INIT();
  if (!p || !bytes) return CUDA_ERROR_INVALID_VALUE;
  size_t n = (bytes + 255) / 256 * 256;
  void* m = std::aligned_alloc(256, n);
  if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
  std::memset(m, 0xcd, n);  // not zeros: a kernel reading memory nobody wrote shows up in the numbers
  auto a = std::make_unique<Alloc>();
  a->base = reinterpret_cast<uintptr_t>(m);
  a->size = bytes;
  if (g_counting) ensure_counters(a.get());
  g_allocs[a->base] = std::move(a);
  *p = reinterpret_cast<uintptr_t>(m);
  return CUDA_SUCCESS;
}
SIM_API CUresult cuMemFree_v2(CUdeviceptr p) {
  NEED_INIT();
  auto it = g_allocs.find(uintptr_t(p));
  if (it == g_allocs.end()) return CUDA_ERROR_INVALID_VALUE;
  if (g_last == it->second.get()) g_last = nullptr;
  std::free(reinterpret_cast<void*>(p));
  g_allocs.erase(it);
  return CUDA_SUCCESS;
}
static bool in_range(CUdeviceptr p, size_t n) { return n == 0 || find(reinterpret_cast<void*>(p), n) != nullptr; }
SIM_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
  NEED_INIT();
  if (g_sticky) return g_sticky;
  if (!in_range(dst, n) || (n && !src)) return CUDA_ERROR_INVALID_VALUE;
  std::memcpy(reinterpret_cast<void*>(dst), src, n);
  return CUDA_SUCCESS;
}
SIM_API CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t n) {
  NEED_INIT();
  if (g_sticky) return g_sticky;
  if (!in_range(src, n) || (n && !dst)) return CUDA_ERROR_INVALID_VALUE;
  std::memcpy(dst, reinterpret_cast<void*>(src), n);
  return CUDA_SUCCESS;
}
SIM_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, CUstream s) {
  if (s && reinterpret_cast<Stream*>(s)->capturing) return CUDA_ERROR_NOT_SUPPORTED;
  return cuMemcpyHtoD_v2(dst, src, n);
}
SIM_API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, CUstream s) {
  if (s && reinterpret_cast<Stream*>(s)->capturing) return CUDA_ERROR_NOT_SUPPORTED;
  return cuMemcpyDtoH_v2(dst, src, n);
}
SIM_API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) {
  NEED_INIT();
  if (g_sticky) return g_sticky;
  if (!in_range(dst, n)) return CUDA_ERROR_INVALID_VALUE;
  std::memset(reinterpret_cast<void*>(dst), v, n);
  return CUDA_SUCCESS;
}

SIM_API CUresult cuStreamCreate(CUstream* s, unsigned flags) {
  NEED_INIT();
  if (!s || flags > 1) return CUDA_ERROR_INVALID_VALUE;
  *s = reinterpret_cast<CUstream>(new Stream());
  return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamDestroy_v2(CUstream s) { NEED_INIT(); delete reinterpret_cast<Stream*>(s); return CUDA_SUCCESS; }
SIM_API CUresult cuStreamSynchronize(CUstream) { NEED_INIT(); return g_sticky; }
SIM_API CUresult cuStreamBeginCapture_v2(CUstream s, int mode) {
  NEED_INIT();
  auto* st = reinterpret_cast<Stream*>(s);
  if (!st || st->capturing || mode < 0 || mode > 2) return CUDA_ERROR_INVALID_VALUE;
  st->capturing = true;
  st->capture = new std::vector<Launch>();
  return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamEndCapture(CUstream s, CUgraph* g) {
  NEED_INIT();
  auto* st = reinterpret_cast<Stream*>(s);
  if (!st || !st->capturing || !g) return CUDA_ERROR_INVALID_VALUE;
  auto* graph = new Graph{std::move(*st->capture)};
  delete st->capture;
  st->capture = nullptr;
  st->capturing = false;
  *g = reinterpret_cast<CUgraph>(graph);
  return CUDA_SUCCESS;
}
SIM_API CUresult cuGraphInstantiateWithFlags(CUgraphExec* e, CUgraph g, unsigned long long flags) {
  NEED_INIT();
  if (!e || !g || flags) return CUDA_ERROR_INVALID_VALUE;
  *e = reinterpret_cast<CUgraphExec>(new Graph(*reinterpret_cast<Graph*>(g)));
  return CUDA_SUCCESS;
}
SIM_API CUresult cuGraphLaunch(CUgraphExec e, CUstream) {
  NEED_INIT();
  if (!e) return CUDA_ERROR_INVALID_HANDLE;
  for (auto& L : reinterpret_cast<Graph*>(e)->launches) {
    int r = execute(L);
    if (r) return r;
  }
  return CUDA_SUCCESS;
}
SIM_API CUresult cuGraphExecDestroy(CUgraphExec e) { delete reinterpret_cast<Graph*>(e); return CUDA_SUCCESS; }
SIM_API CUresult cuGraphDestroy(CUgraph g) { delete reinterpret_cast<Graph*>(g); return CUDA_SUCCESS; }

SIM_API CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                                unsigned smem, CUstream s, void** params, void** extra) {
  NEED_INIT();
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  const unsigned g[3] = {gx, gy, gz}, b[3] = {bx, by, bz};
  if (smem > (163u << 10)) return CUDA_ERROR_INVALID_VALUE;
  return launch(reinterpret_cast<Kernel*>(f), g, b, smem, reinterpret_cast<Stream*>(s), params, extra);
}

static const char* error_name(int e) {
  switch (e) {
    case 0: return "CUDA_SUCCESS";
    case 1: return "CUDA_ERROR_INVALID_VALUE";
    case 2: return "CUDA_ERROR_OUT_OF_MEMORY";
    case 3: return "CUDA_ERROR_NOT_INITIALIZED";
    case 100: return "CUDA_ERROR_NO_DEVICE";
    case 101: return "CUDA_ERROR_INVALID_DEVICE";
    case 200: return "CUDA_ERROR_INVALID_IMAGE";
    case 201: return "CUDA_ERROR_INVALID_CONTEXT";
    case 400: return "CUDA_ERROR_INVALID_HANDLE";
    case 500: return "CUDA_ERROR_NOT_FOUND";
    case 700: return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case 701: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case 719: return "CUDA_ERROR_LAUNCH_FAILED";
    case 801: return "CUDA_ERROR_NOT_SUPPORTED";
    default: return nullptr;
  }
}
SIM_API CUresult cuGetErrorName(CUresult e, const char** s) {
  if (!s) return CUDA_ERROR_INVALID_VALUE;
  *s = error_name(e);
  return *s ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
SIM_API CUresult cuGetErrorString(CUresult e, const char** s) {
  if (!s) return CUDA_ERROR_INVALID_VALUE;
  if (e == CUDA_ERROR_LAUNCH_FAILED && !g_error.empty()) { *s = g_error.c_str(); return CUDA_SUCCESS; }
  if (e == CUDA_ERROR_NO_DEVICE) { *s = "no CUDA-capable device is detected"; return CUDA_SUCCESS; }  // the driver's words
  *s = error_name(e);
  return *s ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

// ---- the emulator's extras (rwkvc_sim_*) -----------------------------------------------------------------
/** 1: this library is the emulator (the runtime checks for this symbol). */
SIM_API int rwkvc_sim_version() { return 1; }
/** The last launch failure in words (empty when none); clears the sticky error when `clear`. */
SIM_API const char* rwkvc_sim_last_error(int clear) {
  static std::string copy;
  copy = g_error;
  if (clear) { g_error.clear(); g_sticky = CUDA_SUCCESS; }
  return copy.c_str();
}
/** The image the last cuModuleLoadData received. */
SIM_API const char* rwkvc_sim_module_image() { return g_module_image.c_str(); }
/** Names of the compiled-in kernels, one per line. */
SIM_API const char* rwkvc_sim_kernels() {
  static std::string s;
  s.clear();
  for (auto& k : kernels()) s += k.name + "\n";
  return s.c_str();
}
/** Order of blocks and of a block's threads (fibers): 0 first to last, 1 last to first. */
SIM_API void rwkvc_sim_order(int reverse) { g_reverse = reverse != 0; }
/** Byte counting on (1) or off (0); turning it on, or rwkvc_sim_reset_counts, zeroes every counter. */
SIM_API void rwkvc_sim_reset_counts() {
  g_records.clear();
  for (auto& [_, a] : g_allocs) {
    a->reads.clear();
    a->writes.clear();
    a->wlaunch.clear();
    if (g_counting) ensure_counters(a.get());
  }
}
SIM_API void rwkvc_sim_count(int on) {
  g_counting = on != 0;
  rwkvc_sim_reset_counts();
}
/** Per-byte read and write counts of [p, p + n) (within one allocation) since the last reset. */
SIM_API int rwkvc_sim_byte_counts(CUdeviceptr p, size_t n, uint32_t* reads, uint32_t* writes) {
  Alloc* a = find(reinterpret_cast<void*>(p), n);
  if (!a || a->reads.size() != a->size) return CUDA_ERROR_INVALID_VALUE;
  size_t off = uintptr_t(p) - a->base;
  if (reads) std::memcpy(reads, a->reads.data() + off, n * 4);
  if (writes) std::memcpy(writes, a->writes.data() + off, n * 4);
  return CUDA_SUCCESS;
}
/** Launches executed since the last reset (counting on). */
SIM_API int rwkvc_sim_launches() { return int(g_records.size()); }
/** Launch i: its kernel name; out[0..8] = grid xyz, block xyz, bytes read, written, written more than once. */
SIM_API const char* rwkvc_sim_launch(int i, uint64_t* out) {
  if (i < 0 || size_t(i) >= g_records.size()) return nullptr;
  const LaunchRecord& r = g_records[size_t(i)];
  for (int d = 0; d < 3; d++) { out[d] = r.grid[d]; out[3 + d] = r.block[d]; }
  out[6] = r.read;
  out[7] = r.written;
  out[8] = r.rewritten;
  return r.kernel.c_str();
}
