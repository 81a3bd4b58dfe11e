// The matmul range kernels, written once and templated on an instruction set's vector traits
// V (simd_avx2.h, simd_avx512.h), which supply the loads, the FMA, the fixed-order horizontal
// sum, the bfloat16 dot and the integer group dot. Each per-ISA unit includes this after its
// traits and builds its table with matmul_table<V>(); everything here has internal linkage
// (see kernel_table.h).
//
// Each kernel keeps one set of accumulators per row of x and runs the same instruction sequence
// for a row whatever the number of rows R, so a row's result does not depend on its batch.
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
          const T* x = xs + r * a.in_padded + i;
          acc0[r] = dot(acc0[r], x, w0);
          acc1[r] = dot(acc1[r], x + kStep, w1);
        }
      }
      // A last kStep inputs, where 2 * kStep does not divide in_padded (a multiple of 32).
      if (32 % (2 * kStep) != 0 && i < a.in_padded) {
        const auto w0 = load_weight(w + i);
        KYUTAI_UNROLL
        for (int r = 0; r < R; ++r) acc0[r] = dot(acc0[r], xs + r * a.in_padded + i, w0);
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

  template <int R>
  static void rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
    const int64_t blocks = a.in_padded / 512, groups = a.in_padded / 32;
    const int64_t block_bytes = kInt4 ? 256 : 512;
    for (int64_t o = o0; o < o1; ++o) {
      const uint8_t* w = a.w + o * a.w_row_bytes;
      const uint16_t* ws = a.w_scales + o * groups;
      typename V::F acc[R];
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) acc[r] = V::zero();
      for (int64_t s = 0; s < blocks; ++s) {
        prefetch_lines(w + s * block_bytes, block_bytes);
        for (int p = 0; p < kParts; ++p) {
          typename V::I v[8];
          load_part(w + s * block_bytes, p, v);
          const int64_t g0 = 16 * s + V::kLanes * p;
          const typename V::F dw = V::load_scales(ws + g0);
          KYUTAI_UNROLL
          for (int r = 0; r < R; ++r) {
            const int64_t gi = r * groups + g0;
            const typename V::I start = V::template dot_start<kInt4>(a.xbias + gi);
            const typename V::I dot = V::template dot_groups<kInt4>(
                start, v, a.xq + r * a.in_padded + 512 * s + kPartBytes * p);
            const typename V::F scale = V::mul(dw, V::load(a.xd + gi));
            acc[r] = V::fma(V::to_float(dot), scale, acc[r]);
          }
        }
      }
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) a.y[r * a.y_stride + o] = V::hsum(acc[r]);
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

// The instruction set's table: its range kernels, with the given activation quantizer and
// attention head (null: the portable one).
template <class V>
constexpr KernelTable matmul_table(QuantizeRow quantize_row, AttendHead attend_head) {
  return KernelTable{quantize_row,
                     by_rows<FloatKernel<V, float>>,
                     by_rows<FloatKernel<V, uint16_t>>,
                     by_rows<QuantizedKernel<V, false>>,
                     by_rows<QuantizedKernel<V, true>>,
                     attend_head};
}

}  // namespace
}  // namespace kyutai::kernels::detail
