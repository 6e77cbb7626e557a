// cuda_sim.h — TEST INFRASTRUCTURE: compiles rwkvc's generated CUDA translation unit as C++ on the CPU.
//
//   g++ -std=c++20 -O2 -fPIC -shared -include cuda_sim.h -DRWKVC_SIM model.cu … libcuda_sim.cpp
//
// The generated text is compiled unchanged. This header supplies what nvcc would: the CUDA qualifiers,
// vector types, the built-in index variables, barriers, warp shuffles and votes, f16/bf16 conversions,
// and the global-memory accessors of the generated prelude (ld_f32/st_f32/ldg_*), which here check
// bounds and alignment and count the bytes each launch moves.
//
// Execution model (libcuda_sim.cpp): the blocks of a grid run one after another; a block's threads are
// cooperative fibers (one stack each) that run until they reach a barrier (__syncthreads, __syncwarp or a
// shuffle/vote's exchange), so every thread of the block (or warp) is at the barrier before any passes
// it: the lockstep-barrier semantics of the hardware, deterministically. `__shared__` variables are
// function-statics: one block runs at a time, so a static IS the block's shared memory.
#pragma once
#ifndef RWKVC_SIM
#error "cuda_sim.h is the CPU emulator's header: compile with -DRWKVC_SIM"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <utility>

// ---- qualifiers -----------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __restrict__ __restrict
#define __shared__ static
#define __constant__ static const
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __CUDACC_SIM__ 1

// ---- vector types -----------------------------------------------------------------------------------
#define RWKVC_SIM_VEC2(T, N, A) struct __attribute__((aligned(A))) N##2 { T x, y; }; \
  inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define RWKVC_SIM_VEC4(T, N, A) struct __attribute__((aligned(A))) N##4 { T x, y, z, w; }; \
  inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
RWKVC_SIM_VEC2(float, float, 8)
RWKVC_SIM_VEC4(float, float, 16)
RWKVC_SIM_VEC2(unsigned int, uint, 8)
RWKVC_SIM_VEC4(unsigned int, uint, 16)
RWKVC_SIM_VEC2(int, int, 8)
RWKVC_SIM_VEC4(int, int, 16)
RWKVC_SIM_VEC2(unsigned short, ushort, 4)
RWKVC_SIM_VEC4(unsigned short, ushort, 8)
RWKVC_SIM_VEC2(short, short, 4)
RWKVC_SIM_VEC4(short, short, 8)
RWKVC_SIM_VEC2(unsigned char, uchar, 2)
RWKVC_SIM_VEC4(unsigned char, uchar, 4)
RWKVC_SIM_VEC2(signed char, char, 2)
RWKVC_SIM_VEC4(signed char, char, 4)
struct uint3 { unsigned int x, y, z; };
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

// ---- the emulator's state and services (libcuda_sim.cpp) --------------------------------------------
#define RWKVC_SIM_HIDDEN __attribute__((visibility("hidden")))
#if defined(RWKVC_SIM_THREADS)
#define RWKVC_SIM_TLS thread_local  // a block's threads are OS threads
#else
#define RWKVC_SIM_TLS               // a block's threads are fibers on one OS thread
#endif
extern RWKVC_SIM_HIDDEN RWKVC_SIM_TLS uint3 threadIdx;
extern RWKVC_SIM_HIDDEN uint3 blockIdx;
extern RWKVC_SIM_HIDDEN dim3 blockDim, gridDim;
constexpr int warpSize = 32;

namespace rwkvc_sim {
/** The running thread's index in its block (x fastest), and the block's exchange slots (one per thread). */
extern RWKVC_SIM_HIDDEN RWKVC_SIM_TLS unsigned cur_tid;
extern RWKVC_SIM_HIDDEN unsigned cur_nthreads;
extern RWKVC_SIM_HIDDEN uint64_t xchg[1024];
/** Wait until every live thread of the block (kind 0) or of the warp's lanes in `mask` (kind 1) is here. */
RWKVC_SIM_HIDDEN void barrier(int kind, unsigned mask);
/** Global-memory accesses: bounds, alignment, and (when counting) per-byte read/write counts. */
RWKVC_SIM_HIDDEN void on_read(const void* p, size_t n, size_t align);
RWKVC_SIM_HIDDEN void on_write(const void* p, size_t n, size_t align);
/** Stop the launch with an error (the driver call returns CUDA_ERROR_LAUNCH_FAILED and keeps the message). */
[[noreturn]] RWKVC_SIM_HIDDEN void trap(const char* what);

inline unsigned lane() { return cur_tid & 31u; }

template <class T> inline T exchange(unsigned mask, T v, unsigned src_lane, bool valid) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  const unsigned t = cur_tid;
  xchg[t] = bits;
  barrier(1, mask);
  const unsigned src = (t & ~31u) + src_lane;
  uint64_t r = bits;
  if (valid && src < cur_nthreads && (mask >> src_lane & 1u)) r = xchg[src];
  barrier(1, mask);
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}
inline unsigned vote(unsigned mask, bool pred) {
  const unsigned t = cur_tid;
  xchg[t] = pred ? 1u : 0u;
  barrier(1, mask);
  unsigned bits = 0, w0 = t & ~31u;
  for (unsigned l = 0; l < 32 && w0 + l < cur_nthreads; l++)
    if ((mask >> l & 1u) && xchg[w0 + l]) bits |= 1u << l;
  barrier(1, mask);
  return bits;
}

// Kernel registration: the sim build appends RWKVC_SIM_KERNEL(name) for every extern "C" kernel, which
// records how to call it from cuLaunchKernel's kernelParams (one pointer per argument, as on the GPU).
using Invoker = void (*)(void* fn, void** args);
RWKVC_SIM_HIDDEN void register_kernel(const char* name, void* fn, Invoker invoke, int nargs, const size_t* sizes, const size_t* aligns);
template <class... A, size_t... I> inline void call_with(void (*f)(A...), void** args, std::index_sequence<I...>) {
  f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}
template <class... A> struct Registrar {
  static void invoke(void* fn, void** args) {
    call_with(reinterpret_cast<void (*)(A...)>(fn), args, std::index_sequence_for<A...>{});
  }
  Registrar(const char* name, void (*f)(A...)) {
    // Automatic arrays, not statics: a static of an inline template is one object per process
    // (STB_GNU_UNIQUE), shared with another emulator library whose kernel has the same name and types.
    const size_t sizes[sizeof...(A) + 1] = {sizeof(A)..., 0};
    const size_t aligns[sizeof...(A) + 1] = {alignof(A)..., 0};
    register_kernel(name, reinterpret_cast<void*>(f), &Registrar::invoke, int(sizeof...(A)), sizes, aligns);
  }
};
template <class... A> Registrar(const char*, void (*)(A...)) -> Registrar<A...>;
}  // namespace rwkvc_sim

#define RWKVC_SIM_KERNEL(name) static rwkvc_sim::Registrar rwkvc_sim_reg_##name(#name, &name);

// ---- barriers, shuffles, votes ------------------------------------------------------------------------
inline void __syncthreads() { rwkvc_sim::barrier(0, 0xffffffffu); }
inline int __syncthreads_count(int p) {
  static int n;  // block-wide (one block runs at a time)
  rwkvc_sim::barrier(0, ~0u);
  if (rwkvc_sim::cur_tid == 0) n = 0;
  rwkvc_sim::barrier(0, ~0u);
  if (p) __atomic_fetch_add(&n, 1, __ATOMIC_RELAXED);
  rwkvc_sim::barrier(0, ~0u);
  int r = n;
  rwkvc_sim::barrier(0, ~0u);
  return r;
}
inline int __syncthreads_or(int p) { return __syncthreads_count(p) != 0; }
inline int __syncthreads_and(int p) {
  return __syncthreads_count(p) == int(rwkvc_sim::cur_nthreads);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { rwkvc_sim::barrier(1, mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  unsigned l = rwkvc_sim::lane(), base = l & ~unsigned(width - 1);
  return rwkvc_sim::exchange(mask, v, base + (unsigned(src) & unsigned(width - 1)), true);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  unsigned l = rwkvc_sim::lane(), base = l & ~unsigned(width - 1), s = l ^ unsigned(lane_mask);
  return rwkvc_sim::exchange(mask, v, s & 31u, (s & ~unsigned(width - 1)) == base);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  unsigned l = rwkvc_sim::lane(), base = l & ~unsigned(width - 1), s = l + delta;
  return rwkvc_sim::exchange(mask, v, s & 31u, s < base + unsigned(width));
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  unsigned l = rwkvc_sim::lane(), base = l & ~unsigned(width - 1);
  return rwkvc_sim::exchange(mask, v, (l - delta) & 31u, l >= base + delta);
}
inline unsigned __ballot_sync(unsigned mask, int p) { return rwkvc_sim::vote(mask, p != 0); }
inline int __any_sync(unsigned mask, int p) { return rwkvc_sim::vote(mask, p != 0) != 0; }
inline int __all_sync(unsigned mask, int p) { return rwkvc_sim::vote(mask, p != 0) == rwkvc_sim::vote(mask, true); }
inline unsigned __activemask() { return rwkvc_sim::vote(0xffffffffu, true); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x ? __builtin_clz(unsigned(x)) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }

// ---- bit casts, math ------------------------------------------------------------------------------
template <class To, class From> inline To rwkvc_bitcast(From v) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  std::memcpy(&t, &v, sizeof(To));
  return t;
}
inline float __int_as_float(int v) { return rwkvc_bitcast<float>(v); }
inline int __float_as_int(float v) { return rwkvc_bitcast<int>(v); }
inline float __uint_as_float(unsigned v) { return rwkvc_bitcast<float>(v); }
inline unsigned __float_as_uint(float v) { return rwkvc_bitcast<unsigned>(v); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
template <class T> inline T __ldg(const T* p) { rwkvc_sim::on_read(p, sizeof(T), alignof(T)); return *p; }

// ---- f16 / bf16 (storage types with exact conversions; arithmetic happens in f32) ---------------------
struct __half { unsigned short __x; };
struct __half2 { __half x, y; };
struct __nv_bfloat16 { unsigned short __x; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
inline float __half2float(__half h) {
  unsigned s = (h.__x >> 15) & 1u, e = (h.__x >> 10) & 31u, m = h.__x & 1023u, bits;
  if (e == 0) {
    if (m == 0) bits = s << 31;
    else {  // subnormal: normalise
      int ee = -1;
      do { ee++; m <<= 1; } while (!(m & 1024u));
      bits = (s << 31) | unsigned(127 - 15 - ee) << 23 | (m & 1023u) << 13;
    }
  } else if (e == 31) bits = (s << 31) | 0x7f800000u | m << 13;
  else bits = (s << 31) | (e + 112u) << 23 | m << 13;
  return __uint_as_float(bits);
}
inline __half __float2half_rn(float f) {  // round to nearest even, as cvt.rn.f16.f32
  unsigned x = __float_as_uint(f), s = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  unsigned short r;
  if (x > 0x7f800000u) r = 0x7e00u;                      // NaN
  else if (x >= 0x477ff000u) r = 0x7c00u;                // overflow (incl. inf)
  else if (x < 0x38800000u) {                            // subnormal or zero
    if (x < 0x33000000u) r = 0;
    else {
      unsigned e = x >> 23, m = (x & 0x7fffffu) | 0x800000u, shift = 126 - e;
      unsigned v = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
      if (rem > half || (rem == half && (v & 1u))) v++;
      r = (unsigned short)v;
    }
  } else {
    unsigned v = ((x >> 13) - (112u << 10)), rem = x & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) v++;
    r = (unsigned short)v;
  }
  return __half{(unsigned short)(r | s)};
}
inline __half __float2half(float f) { return __float2half_rn(f); }
inline __half __ushort_as_half(unsigned short v) { return __half{v}; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline float __low2float(__half2 h) { return __half2float(h.x); }
inline float __high2float(__half2 h) { return __half2float(h.y); }
inline float2 __half22float2(__half2 h) { return float2{__half2float(h.x), __half2float(h.y)}; }
inline __half2 __halves2half2(__half a, __half b) { return __half2{a, b}; }
inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float(unsigned(b.__x) << 16); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  unsigned x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(unsigned short)((x >> 16) | 0x40u)};
  x += 0x7fffu + ((x >> 16) & 1u);
  return __nv_bfloat16{(unsigned short)(x >> 16)};
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short v) { return __nv_bfloat16{v}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return float2{__bfloat162float(h.x), __bfloat162float(h.y)}; }
using half = __half;
using half2 = __half2;

// ---- the generated prelude's global-memory accessors (targets/cuda/artifact.ts PRELUDE_ACCESSORS) ----
inline float ld_f32(const float* p) { rwkvc_sim::on_read(p, 4, 4); return *p; }
inline void st_f32(float* p, float v) { rwkvc_sim::on_write(p, 4, 4); *p = v; }
inline float ldg_f32(const float* p) { rwkvc_sim::on_read(p, 4, 4); return *p; }
/** A counted, aligned read of one T (the vector loads' widths are their alignments too). */
template <class T> inline T ldg_as(const void* p) {
  rwkvc_sim::on_read(p, sizeof(T), sizeof(T));
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
inline uint32_t ldg_u8(const void* p) { return ldg_as<unsigned char>(p); }
inline uint32_t ldg_u16(const void* p) { return ldg_as<unsigned short>(p); }
inline uint32_t ldg_u32(const void* p) { return ldg_as<uint32_t>(p); }
inline uint2 ldg_u2(const void* p) { return ldg_as<uint2>(p); }
inline uint4 ldg_u4(const void* p) { return ldg_as<uint4>(p); }
