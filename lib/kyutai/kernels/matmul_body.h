// The matmul range kernels, written once and templated on an instruction set's vector traits
// V (simd_avx2.h, simd_avx512.h), which supply the loads, the FMA, the fixed-order horizontal
// sum, the bfloat16 dot and the integer group dot. Each per-ISA unit includes this after its
// traits and builds its table with matmul_table<V>(); everything here has internal linkage
// (see kernel_table.h).
//
// Each kernel keeps one set of accumulators per row of x and runs the same floating-point
// operations, in the same order, for a row whatever the number of rows R (the integer dots of
// the quantized kernels may be formed in another order: integer sums are exact), so a row's
// result does not depend on its batch.
// Rows share the weight loads: the weight is read once per call.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kyutai/kernels/kernel_table.h"

namespace kyutai::kernels::detail {
namespace {

// The per-row accumulators must stay in registers: GCC does not fully unroll these loops by
// itself and then keeps the accumulators in memory.
#define KYUTAI_UNROLL _Pragma("GCC unroll 8")

#ifndef KYUTAI_PREFETCH_BYTES
#define KYUTAI_PREFETCH_BYTES 4096
#endif
// Software prefetch of the weight stream this far ahead of the loads (rows are contiguous, so
// it runs on into the next row): the hardware prefetchers alone leave a single-row product
// short of the memory's bandwidth.
constexpr int64_t kPrefetchBytes = KYUTAI_PREFETCH_BYTES;

inline void prefetch_lines(const void* p, int64_t bytes) {
  if constexpr (kPrefetchBytes > 0) {
    const char* c = static_cast<const char*>(p) + kPrefetchBytes;
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 0, 3);
  }
}

// Level-2 prefetch of `bytes` at `offset` bytes from p (a tile that is read out of order once
// it is there). The address may lie past the end of the weights (the last tiles prefetch
// beyond them): it is formed as an integer, never as an out-of-range pointer, and a prefetch
// does not fault.
inline void prefetch_tile(const void* p, int64_t offset, int64_t bytes) {
  const uintptr_t c = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(offset);
  for (int64_t b = 0; b < bytes; b += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(c + static_cast<uintptr_t>(b)), 0, 2);
}

// No <algorithm> in the per-instruction-set units (kernel_table.h).
constexpr int64_t min_of(int64_t a, int64_t b) {
  return a < b ? a : b;
}
constexpr int64_t max_of(int64_t a, int64_t b) {
  return a < b ? b : a;
}

// Where the rows of x and their scales (1.25 bytes per input and row) take more than
// kXTileAbove, x is read in chunks of kXCacheBytes, tiles of kTileRows weight rows at a time.
// Measured with kernel-bench (docs/PERFORMANCE.md): up to about twice the level-1 data cache
// (32-48 KB on the machines we know), reading the weight rows straight through is faster; above
// it, chunks are (int4, 8 rows of 11264 inputs: 9.7 -> 15 GB/s; 4 rows, 56 KB of x: 18-19 ->
// 26-28 GB/s with 48 KB here instead of 64; at 32 KB, 8 rows of 4096 inputs
// were slower, int4 by 2-18 %).
constexpr int64_t kXTileAbove = 48 * 1024;
constexpr int64_t kXCacheBytes = 20 * 1024;
constexpr int64_t kTileRows = 16;

// Float32 (T = float, FMA) and BFloat16 (T = uint16_t bits, the traits' bfloat16 dot): two
// accumulator sets per row, kStep inputs each per step.
template <class V, class T>
struct FloatKernel {
  static constexpr bool kF32 = std::is_same_v<T, float>;
  static constexpr int kStep = kF32 ? V::kLanes : V::kBf16Inputs;

  static const T* prepared_x(const MatmulArgs& a) {
    if constexpr (kF32) return a.xf;
    else return a.xb;
  }
  static auto load_weight(const T* w) {
    if constexpr (kF32) return V::load(w);
    else return V::load_bf16_weight(w);
  }
  template <class W>
  static typename V::F dot(typename V::F acc, const T* x, W w) {
    if constexpr (kF32) return V::fma(V::load(x), w, acc);
    else return V::dot_bf16(acc, x, w);
  }

  template <int R>
  static void rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
    const T* xs = prepared_x(a);
    for (int64_t o = o0; o < o1; ++o) {
      const auto* w = reinterpret_cast<const T*>(a.w + o * a.w_row_bytes);
      typename V::F acc0[R], acc1[R];
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = V::zero();
      int64_t i = 0;
      for (; i + 2 * kStep <= a.in_padded; i += 2 * kStep) {
        prefetch_lines(w + i, 2 * kStep * sizeof(T));
        const auto w0 = load_weight(w + i), w1 = load_weight(w + i + kStep);
        KYUTAI_UNROLL
        for (int r = 0; r < R; ++r) {
          const T* x = xs + r * a.x_pitch + i;
          acc0[r] = dot(acc0[r], x, w0);
          acc1[r] = dot(acc1[r], x + kStep, w1);
        }
      }
      // A last kStep inputs, where 2 * kStep does not divide in_padded (a multiple of 32).
      if (32 % (2 * kStep) != 0 && i < a.in_padded) {
        const auto w0 = load_weight(w + i);
        KYUTAI_UNROLL
        for (int r = 0; r < R; ++r) acc0[r] = dot(acc0[r], xs + r * a.x_pitch + i, w0);
      }
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) a.y[r * a.y_stride + o] = V::hsum(V::add(acc0[r], acc1[r]));
    }
  }
};

// Int8 and Int4. A super-block (512 inputs, 16 groups) is 8 sub-vectors of 64 bytes in which
// the 32-bit lane g holds inputs 4k..4k+3 of group g; a vector of V::kLanes lanes covers one
// part of it (16 / kLanes parts). Per part and row, V::dot_groups gives each group's exact
// integer dot in its own lane; one conversion and one FMA then apply d(w) * d(x) per group.
template <class V, bool kInt4>
struct QuantizedKernel {
  static constexpr int kParts = 16 / V::kLanes;
  static constexpr int kPartBytes = 4 * V::kLanes;  // of each 64-byte sub-vector

  // Part p of a super-block's 8 sub-vectors, as unsigned bytes q + offset. Int4 packs
  // sub-vectors 2j (low nibbles) and 2j + 1 (high nibbles) into the same 64 bytes.
  static void load_part(const uint8_t* block, int p, typename V::I v[8]) {
    if (kInt4) {
      KYUTAI_UNROLL
      for (int j = 0; j < 4; ++j) {
        const typename V::I b = V::load_bytes(block + 64 * j + kPartBytes * p);
        v[2 * j] = V::low_nibbles(b);
        v[2 * j + 1] = V::high_nibbles(b);
      }
    } else {
      KYUTAI_UNROLL
      for (int k = 0; k < 8; ++k) v[k] = V::load_bytes(block + 64 * k + kPartBytes * p);
    }
  }

  // One super-block s of weight row w (scales ws) into every row's accumulators.
  template <int R>
  static void block(const MatmulArgs& a, const uint8_t* w, const uint16_t* ws, int64_t s,
                    int64_t groups, typename V::F acc[R]) {
    const int64_t block_bytes = kInt4 ? 256 : 512;
    for (int p = 0; p < kParts; ++p) {
      const int64_t g0 = 16 * s + V::kLanes * p;
      const typename V::F dw = V::load_scales(ws + g0);
      const int8_t* xq = a.xq + 512 * s + kPartBytes * p;
      typename V::I dot[R];
      if constexpr (V::kRowsInterleaved && (R > 4 || (kInt4 && R > 2))) {
        // The rows' integer dots side by side, so that consecutive instructions do not wait
        // for each other (integer sums: the order does not change the result). Int4 from 3
        // rows: its weights then stream 64 bytes at a time between the products (kernel-bench,
        // 4 rows: 34.7-38.3 GB/s against 26.2-32.6); int8 at 2-4 rows and int4 at 2 lose or
        // gain nothing.
        KYUTAI_UNROLL
        for (int r = 0; r < R; ++r)
          dot[r] = V::template dot_start<kInt4>(a.xbias + r * groups + g0);
        KYUTAI_UNROLL
        for (int j = 0; j < 4; ++j) {
          typename V::I pair[2];
          load_pair(w + s * block_bytes, p, j, pair);
          KYUTAI_UNROLL
          for (int h = 0; h < 2; ++h) {
            KYUTAI_UNROLL
            for (int r = 0; r < R; ++r)
              dot[r] = V::template dot_sub<kInt4>(dot[r], pair[h],
                                                  xq + r * a.x_pitch + 64 * (2 * j + h));
          }
        }
      } else {
        typename V::I v[8];
        load_part(w + s * block_bytes, p, v);
        KYUTAI_UNROLL
        for (int r = 0; r < R; ++r)
          dot[r] = V::template dot_groups<kInt4>(
              V::template dot_start<kInt4>(a.xbias + r * groups + g0), v, xq + r * a.x_pitch);
      }
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) {
        const typename V::F scale = V::mul(dw, V::load(a.xd + r * groups + g0));
        acc[r] = V::fma(V::to_float(dot[r]), scale, acc[r]);
      }
    }
  }

  // Sub-vectors 2j and 2j + 1 of part p (see load_part).
  static void load_pair(const uint8_t* block, int p, int j, typename V::I v[2]) {
    if (kInt4) {
      const typename V::I b = V::load_bytes(block + 64 * j + kPartBytes * p);
      v[0] = V::low_nibbles(b);
      v[1] = V::high_nibbles(b);
    } else {
      v[0] = V::load_bytes(block + 64 * (2 * j) + kPartBytes * p);
      v[1] = V::load_bytes(block + 64 * (2 * j + 1) + kPartBytes * p);
    }
  }

  template <int R>
  static void rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
    const int64_t blocks = a.in_padded / 512, groups = a.in_padded / 32;
    const int64_t block_bytes = kInt4 ? 256 : 512;
    // Each weight row is read against all R rows of x. When x (R * 1.25 bytes per input, with
    // its scales) is far larger than the level-1 cache (kXTileAbove), every load of x comes
    // from level 2 and the product runs at half speed. Then the inputs go in chunks that fit:
    // a tile of weight rows is read chunk by chunk, its rows' accumulators kept in memory
    // between chunks, while the next tile is prefetched. Each accumulator still takes its
    // super-blocks in order: the same operations, the same bits.
    const int64_t chunk =
        R * 640 * blocks > kXTileAbove ? max_of(1, kXCacheBytes / (R * 640)) : blocks;
    if (chunk >= blocks) {
      for (int64_t o = o0; o < o1; ++o) {
        const uint8_t* w = a.w + o * a.w_row_bytes;
        typename V::F acc[R];
        KYUTAI_UNROLL
        for (int r = 0; r < R; ++r) acc[r] = V::zero();
        for (int64_t s = 0; s < blocks; ++s) {
          // Single-row int4 runs without: its stream is a contiguous claim that the hardware
          // prefetchers follow, and the prefetch instructions cost it more than they bring
          // (41-52 GB/s without, 37-42 with; int8 and several rows lose without them).
          if constexpr (!(kInt4 && R == 1)) prefetch_lines(w + s * block_bytes, block_bytes);
          block<R>(a, w, a.w_scales + o * groups, s, groups, acc);
        }
        KYUTAI_UNROLL
        for (int r = 0; r < R; ++r) a.y[r * a.y_stride + o] = V::hsum(acc[r]);
      }
      return;
    }
    typename V::F saved[kTileRows][R];
    for (int64_t t0 = o0; t0 < o1; t0 += kTileRows) {
      const int64_t t1 = min_of(o1, t0 + kTileRows);
      for (int64_t c0 = 0; c0 < blocks; c0 += chunk) {
        const int64_t c1 = min_of(blocks, c0 + chunk);
        for (int64_t o = t0; o < t1; ++o) {
          const uint8_t* w = a.w + o * a.w_row_bytes;
          typename V::F acc[R];
          KYUTAI_UNROLL
          for (int r = 0; r < R; ++r) acc[r] = c0 == 0 ? V::zero() : saved[o - t0][r];
          for (int64_t s = c0; s < c1; ++s) {
            // The same place kTileRows rows on: the next tile, into level 2. (When a thread's
            // range is a single tile, that is the next range's: measured so, see
            // docs/PERFORMANCE.md, "Multi-row kernels".)
            prefetch_tile(w, kTileRows * a.w_row_bytes + s * block_bytes, block_bytes);
            block<R>(a, w, a.w_scales + o * groups, s, groups, acc);
          }
          KYUTAI_UNROLL
          for (int r = 0; r < R; ++r) {
            if (c1 == blocks)
              a.y[r * a.y_stride + o] = V::hsum(acc[r]);
            else
              saved[o - t0][r] = acc[r];
          }
        }
      }
    }
  }
};

// A RangeKernel that runs Kernel::rows<R> for the call's row count (1..8).
template <class Kernel>
void by_rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
  switch (a.rows) {
    case 1: return Kernel::template rows<1>(a, o0, o1);
    case 2: return Kernel::template rows<2>(a, o0, o1);
    case 3: return Kernel::template rows<3>(a, o0, o1);
    case 4: return Kernel::template rows<4>(a, o0, o1);
    case 5: return Kernel::template rows<5>(a, o0, o1);
    case 6: return Kernel::template rows<6>(a, o0, o1);
    case 7: return Kernel::template rows<7>(a, o0, o1);
    default: return Kernel::template rows<8>(a, o0, o1);
  }
}

// Dense products (DenseArgs): M outputs times N vectors of columns in registers, the columns'
// panel of x read once per M outputs. AVX2 has 16 registers: 6 x 2 accumulators, 2 for x, 1 for
// the broadcast weight.
template <class V, int M, int N>
void dense_block(const DenseArgs& a, int64_t o, int64_t c) {
  typename V::F acc[M][N];
  KYUTAI_UNROLL
  for (int m = 0; m < M; ++m) KYUTAI_UNROLL
  for (int n = 0; n < N; ++n) acc[m][n] = V::zero();
  const float* w = a.w + o * a.k;
  const float* x = a.x + c;
  for (int64_t i = 0; i < a.k; ++i, x += a.x_stride) {
    typename V::F xv[N];
    KYUTAI_UNROLL
    for (int n = 0; n < N; ++n) xv[n] = V::load(x + n * V::kLanes);
    KYUTAI_UNROLL
    for (int m = 0; m < M; ++m) {
      const typename V::F wv = V::set1(w[m * a.k + i]);
      KYUTAI_UNROLL
      for (int n = 0; n < N; ++n) acc[m][n] = V::fma(wv, xv[n], acc[m][n]);
    }
  }
  KYUTAI_UNROLL
  for (int m = 0; m < M; ++m) KYUTAI_UNROLL
  for (int n = 0; n < N; ++n) V::store(a.y + (o + m) * a.y_stride + c + n * V::kLanes, acc[m][n]);
}

template <class V, int N>
void dense_outputs(const DenseArgs& a, int64_t o0, int64_t o1, int64_t c) {
  constexpr int kM = 6;
  int64_t o = o0;
  for (; o + kM <= o1; o += kM) dense_block<V, kM, N>(a, o, c);
  switch (o1 - o) {
    case 5:
      return dense_block<V, 5, N>(a, o, c);
    case 4:
      return dense_block<V, 4, N>(a, o, c);
    case 3:
      return dense_block<V, 3, N>(a, o, c);
    case 2:
      return dense_block<V, 2, N>(a, o, c);
    case 1:
      return dense_block<V, 1, N>(a, o, c);
    default:
      return;
  }
}

template <class V>
void dense_range(const DenseArgs& a, int64_t o0, int64_t o1, int64_t c0, int64_t c1) {
  int64_t c = c0;
  for (; c + 2 * V::kLanes <= c1; c += 2 * V::kLanes) dense_outputs<V, 2>(a, o0, o1, c);
  for (; c + V::kLanes <= c1; c += V::kLanes) dense_outputs<V, 1>(a, o0, o1, c);
  // The last few columns one at a time, the same fused chain per element.
  for (; c < c1; ++c)
    for (int64_t o = o0; o < o1; ++o) {
      const float* w = a.w + o * a.k;
      float acc = 0.0f;
      for (int64_t i = 0; i < a.k; ++i) acc = __builtin_fmaf(w[i], a.x[i * a.x_stride + c], acc);
      a.y[o * a.y_stride + c] = acc;
    }
}

// The instruction set's table: its range kernels, with the given activation quantizer and
// attention head (null: the portable one).
template <class V>
constexpr KernelTable matmul_table(QuantizeRow quantize_row, AttendHead attend_head) {
  return KernelTable{quantize_row,
                     by_rows<FloatKernel<V, float>>,
                     by_rows<FloatKernel<V, uint16_t>>,
                     by_rows<QuantizedKernel<V, false>>,
                     by_rows<QuantizedKernel<V, true>>,
                     attend_head,
                     dense_range<V>};
}

}  // namespace
}  // namespace kyutai::kernels::detail
