// Pieces the benchmarks share: the median, and the memory read that measures each figure's floor.
// Torch-free.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "kyutai/kernels/huge_pages.h"
#include "kyutai/kernels/thread_pool.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace bench {

inline double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// Sums n words, 64 bytes per step in 4 independent chains, so that the loop is bound by memory
// and not by its own additions, with the kernels' software prefetch: the floor must be the
// best read the machine gives, not one a kernel can beat.
inline uint64_t sum_words(const uint64_t* p, int64_t n) {
  int64_t i = 0;
  uint64_t s = 0;
#ifdef __SSE2__
  __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
  for (; i + 8 <= n; i += 8) {
    __builtin_prefetch(p + i + 512, 0, 3);  // 4 KB ahead, as the kernels (matmul_body.h)
    const auto* v = reinterpret_cast<const __m128i*>(p + i);
    a0 = _mm_add_epi64(a0, _mm_loadu_si128(v));
    a1 = _mm_add_epi64(a1, _mm_loadu_si128(v + 1));
    a2 = _mm_add_epi64(a2, _mm_loadu_si128(v + 2));
    a3 = _mm_add_epi64(a3, _mm_loadu_si128(v + 3));
  }
  alignas(16) uint64_t lanes[2];
  _mm_store_si128(reinterpret_cast<__m128i*>(lanes),
                  _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3)));
  s = lanes[0] + lanes[1];
#endif
  for (; i < n; ++i) s += p[i];
  return s;
}

// Reads `words` words at p on `threads` threads of the kernels' pool, as a product would.
// Returns their sum, for the caller to keep so that the reads are not optimized away.
inline uint64_t read_words(const uint64_t* p, int64_t words, int threads) {
  std::vector<uint64_t> sums(static_cast<size_t>(threads), 0);
  kyutai::kernels::parallel_ranges(words, threads, [&](int64_t b, int64_t e) {
    sums[static_cast<size_t>(b * threads / words)] = sum_words(p + b, e - b);
  });
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  return total;
}

// The floor's buffer and slice: 16 MiB slices (as long as a large product) of 1 GiB.
constexpr int64_t kFloorBufferWords = (int64_t(1) << 30) / 8;
constexpr int64_t kFloorSliceWords = (int64_t(16) << 20) / 8;

// Memory read bandwidth in GB/s, as the kernels' threads see it: the median over the 16 MiB
// slices of a 1 GiB buffer, each read on the kernels' pool by `threads` threads. The floor of
// a figure is the bytes it must read at this rate.
inline double read_bandwidth(int threads) {
  // In transparent huge pages where the system gives them, as the packed weights are
  // (kernels/pack.cpp): the floor is the best read the machine gives.
  static const std::vector<uint64_t, kyutai::kernels::StreamedAllocator<uint64_t>> buffer(kFloorBufferWords, 1);
  std::vector<double> gbps;
  volatile uint64_t sink = 0;
  for (int64_t start = 0; start + kFloorSliceWords <= static_cast<int64_t>(buffer.size());
       start += kFloorSliceWords) {
    const auto t0 = std::chrono::steady_clock::now();
    sink = sink + read_words(buffer.data() + start, kFloorSliceWords, threads);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gbps.push_back(kFloorSliceWords * 8 / s / 1e9);
  }
  return median(gbps);
}

}  // namespace bench
