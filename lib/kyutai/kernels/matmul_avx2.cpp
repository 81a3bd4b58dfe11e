// AVX2 + FMA + F16C kernels, for CPUs without AVX-512. Same structure as matmul_avx512.cpp
// (one accumulator set per row, the weight read once per call) on 256-bit vectors: a
// super-block's sub-vector is two halves of 8 groups. Internal linkage only (see
// kernel_table.h).
#include <immintrin.h>

#include "kyutai/kernels/kernel_table.h"

namespace kyutai::kernels::detail {
namespace {

// The per-row accumulators must stay in registers: GCC does not fully unroll these loops by
// itself and then keeps the accumulators in memory.
#define KYUTAI_UNROLL _Pragma("GCC unroll 8")

// Fixed-order horizontal sum.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int R>
void float32_rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; ++o) {
    const auto* w = reinterpret_cast<const float*>(a.w + o * a.w_row_bytes);
    __m256 acc0[R], acc1[R];
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < a.in_padded; i += 16) {
      const __m256 w0 = _mm256_loadu_ps(w + i), w1 = _mm256_loadu_ps(w + i + 8);
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) {
        const float* x = a.xf + r * a.in_padded + i;
        acc0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x), w0, acc0[r]);
        acc1[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), w1, acc1[r]);
      }
    }
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) a.y[r * a.y_stride + o] = hsum(_mm256_add_ps(acc0[r], acc1[r]));
  }
}

// 8 bfloat16 values widened to float32 (exact).
inline __m256 load_bf16(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// Without vdpbf16ps: widen both operands to float32 and use FMA (one rounding per product and
// sum instead of vdpbf16ps's one per pair; the products themselves are exact either way).
template <int R>
void bfloat16_rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; ++o) {
    const auto* w = reinterpret_cast<const uint16_t*>(a.w + o * a.w_row_bytes);
    __m256 acc0[R], acc1[R];
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < a.in_padded; i += 16) {
      const __m256 w0 = load_bf16(w + i), w1 = load_bf16(w + i + 8);
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) {
        const uint16_t* x = a.xb + r * a.in_padded + i;
        acc0[r] = _mm256_fmadd_ps(load_bf16(x), w0, acc0[r]);
        acc1[r] = _mm256_fmadd_ps(load_bf16(x + 8), w1, acc1[r]);
      }
    }
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) a.y[r * a.y_stride + o] = hsum(_mm256_add_ps(acc0[r], acc1[r]));
  }
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Half h (groups 8h..8h+7) of a super-block's 8 sub-vectors, as unsigned q + offset.
template <bool kInt4>
inline void load_half(const uint8_t* block, int h, __m256i v[8]) {
  if (kInt4) {
    const __m256i low = _mm256_set1_epi8(0x0f);
    KYUTAI_UNROLL
    for (int j = 0; j < 4; ++j) {
      const __m256i b = load256(block + 64 * j + 32 * h);
      v[2 * j] = _mm256_and_si256(b, low);
      v[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), low);
    }
  } else {
    KYUTAI_UNROLL
    for (int k = 0; k < 8; ++k) v[k] = load256(block + 64 * k + 32 * h);
  }
}

// Exact dot of 8 sub-vector halves with x per 32-bit lane. Int4's nibbles (0..15) go straight
// into vpmaddubsw; Int8's q + 128 would saturate its 16-bit pair sums, so Int8 uses |q| and x
// with q's sign instead (at most 2 * 127 * 127) and starts from 0 rather than the offset term.
template <bool kInt4>
inline __m256i dot_half(__m256i dot, const __m256i v[8], const int8_t* xq) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
  KYUTAI_UNROLL
  for (int k = 0; k < 8; ++k) {
    const __m256i x = load256(xq + 64 * k);
    __m256i pairs;
    if (kInt4) {
      pairs = _mm256_maddubs_epi16(v[k], x);
    } else {
      const __m256i q = _mm256_xor_si256(v[k], bias);  // back to signed q
      pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(x, q));
    }
    dot = _mm256_add_epi32(dot, _mm256_madd_epi16(pairs, ones));
  }
  return dot;
}

template <int R, bool kInt4>
void quantized_rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const int64_t blocks = a.in_padded / 512, groups = a.in_padded / 32;
  const int64_t block_bytes = kInt4 ? 256 : 512;
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* w = a.w + o * a.w_row_bytes;
    const uint16_t* ws = a.w_scales + o * groups;
    __m256 acc[R];
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t s = 0; s < blocks; ++s) {
      for (int h = 0; h < 2; ++h) {
        __m256i v[8];
        load_half<kInt4>(w + s * block_bytes, h, v);
        const int64_t g0 = 16 * s + 8 * h;
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + g0)));
        KYUTAI_UNROLL
        for (int r = 0; r < R; ++r) {
          const int64_t gi = r * groups + g0;
          const __m256i start = kInt4 ? load256(a.xbias + gi) : _mm256_setzero_si256();
          const __m256i dot = dot_half<kInt4>(start, v, a.xq + r * a.in_padded + 512 * s + 32 * h);
          const __m256 scale = _mm256_mul_ps(dw, _mm256_loadu_ps(a.xd + gi));
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r]);
        }
      }
    }
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) a.y[r * a.y_stride + o] = hsum(acc[r]);
  }
}

template <int R>
void int8_rows(const MatmulArgs& a, int64_t o0, int64_t o1) { quantized_rows<R, false>(a, o0, o1); }
template <int R>
void int4_rows(const MatmulArgs& a, int64_t o0, int64_t o1) { quantized_rows<R, true>(a, o0, o1); }

KYUTAI_ROWS_DISPATCH(float32_range, float32_rows)
KYUTAI_ROWS_DISPATCH(bfloat16_range, bfloat16_rows)
KYUTAI_ROWS_DISPATCH(int8_range, int8_rows)
KYUTAI_ROWS_DISPATCH(int4_range, int4_rows)

}  // namespace

const KernelTable& avx2_kernels() {
  static const KernelTable table{quantize_row_scalar, float32_range, bfloat16_range, int8_range, int4_range};
  return table;
}

}  // namespace kyutai::kernels::detail
