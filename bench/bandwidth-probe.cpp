// The one-off check of bench/bandwidth.ts: does Node's Buffer.indexOf (glibc memchr) read as fast as
// native code can? Times memchr of an absent byte, and an AVX2 (or scalar) read loop, over the same
// buffer split across threads; the best of 5 passes each.
// Build and run: g++ -O3 -march=native -pthread -o probe bench/bandwidth-probe.cpp && ./probe THREADS BYTES
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

static volatile long sink;

static void loop(const unsigned char* p, size_t n) {
#ifdef __AVX2__
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a = _mm256_add_epi32(a, _mm256_load_si256((const __m256i*)(p + i)));
    b = _mm256_add_epi32(b, _mm256_load_si256((const __m256i*)(p + i + 32)));
    c = _mm256_add_epi32(c, _mm256_load_si256((const __m256i*)(p + i + 64)));
    d = _mm256_add_epi32(d, _mm256_load_si256((const __m256i*)(p + i + 96)));
  }
  a = _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d));
  sink = _mm256_extract_epi32(a, 0);
#else
  long s = 0;
  for (size_t i = 0; i < n; i += 8) s += *(const long*)(p + i);
  sink = s;
#endif
}

template <class F> static double pass(int threads, size_t share, unsigned char* buf, F f) {
  std::vector<std::thread> ts;
  double t0 = now();
  for (int t = 0; t < threads; t++) ts.emplace_back([=] { f(buf + t * share, share); });
  for (auto& t : ts) t.join();
  return threads * share / (now() - t0) / 1e9;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  size_t bytes = argc > 2 ? strtoull(argv[2], 0, 10) : (1ull << 30);
  size_t share = bytes / threads / 4096 * 4096;
  unsigned char* buf = (unsigned char*)aligned_alloc(4096, share * threads);
  memset(buf, 1, share * threads);
  double m = 0, l = 0;
  for (int r = 0; r < 5; r++) {
    double x = pass(threads, share, buf, [](const unsigned char* p, size_t n) { sink = (long)memchr(p, 0, n); });
    double y = pass(threads, share, buf, loop);
    if (x > m) m = x;
    if (y > l) l = y;
  }
  printf("threads %d, %zu bytes: memchr %.1f GB/s, loop %.1f GB/s\n", threads, share * threads, m, l);
  return 0;
}
