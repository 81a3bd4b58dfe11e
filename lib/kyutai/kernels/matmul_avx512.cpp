// AVX-512 kernels (F, BW, VL, VNNI, BF16). Compiled with those target flags, so everything here
// has internal linkage and only the table is visible (see kernel_table.h).
//
// Each kernel keeps one set of accumulators per row of x and runs the same instruction sequence
// for a row whatever the number of rows R, so a row's result does not depend on its batch.
// Rows share the weight loads: the weight is read once per call.
#include <immintrin.h>

#include "kyutai/kernels/kernel_table.h"

namespace kyutai::kernels::detail {
namespace {

// The per-row accumulators must stay in registers: GCC does not fully unroll these loops by
// itself and then keeps the accumulators in memory.
#define KYUTAI_UNROLL _Pragma("GCC unroll 8")

template <int R>
void float32_rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; ++o) {
    const auto* w = reinterpret_cast<const float*>(a.w + o * a.w_row_bytes);
    __m512 acc0[R], acc1[R];
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < a.in_padded; i += 32) {  // in_padded is a multiple of 32
      const __m512 w0 = _mm512_loadu_ps(w + i), w1 = _mm512_loadu_ps(w + i + 16);
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) {
        const float* x = a.xf + r * a.in_padded + i;
        acc0[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x), w0, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + 16), w1, acc1[r]);
      }
    }
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r)
      a.y[r * a.y_stride + o] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
  }
}

inline __m512 dot_bf16(__m512 acc, const uint16_t* x, __m512i w) {
  return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(x), (__m512bh)w);
}

// vdpbf16ps: each float32 lane adds two bfloat16 products, exact in float32, rounding once per
// addition, as oneDNN's bfloat16 products (PyTorch's on CPU) do.
template <int R>
void bfloat16_rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; ++o) {
    const auto* w = reinterpret_cast<const uint16_t*>(a.w + o * a.w_row_bytes);
    __m512 acc0[R], acc1[R];
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= a.in_padded; i += 64) {
      const __m512i w0 = _mm512_loadu_si512(w + i), w1 = _mm512_loadu_si512(w + i + 32);
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) {
        const uint16_t* x = a.xb + r * a.in_padded + i;
        acc0[r] = dot_bf16(acc0[r], x, w0);
        acc1[r] = dot_bf16(acc1[r], x + 32, w1);
      }
    }
    if (i < a.in_padded) {  // a last 32 inputs
      const __m512i w0 = _mm512_loadu_si512(w + i);
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) acc0[r] = dot_bf16(acc0[r], a.xb + r * a.in_padded + i, w0);
    }
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r)
      a.y[r * a.y_stride + o] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
  }
}

// The 8 sub-vectors of one super-block (512 inputs): lane g of sub-vector k holds inputs
// 4k..4k+3 of group g, as unsigned bytes q + offset.
template <bool kInt4>
inline void load_block(const uint8_t* w, __m512i v[8]) {
  if (kInt4) {
    const __m512i low = _mm512_set1_epi8(0x0f);
    KYUTAI_UNROLL
    for (int j = 0; j < 4; ++j) {
      const __m512i b = _mm512_loadu_si512(w + 64 * j);
      v[2 * j] = _mm512_and_si512(b, low);
      v[2 * j + 1] = _mm512_and_si512(_mm512_srli_epi16(b, 4), low);
    }
  } else {
    KYUTAI_UNROLL
    for (int k = 0; k < 8; ++k) v[k] = _mm512_loadu_si512(w + 64 * k);
  }
}

// Int8 and Int4: per super-block and row, vpdpbusd accumulates the 16 groups' exact integer
// dots in the 16 lanes, starting from -offset * sum(q(x)); one conversion and one FMA then
// apply d(w) * d(x) per group.
template <int R, bool kInt4>
void quantized_rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const int64_t blocks = a.in_padded / 512, groups = a.in_padded / 32;
  const int64_t block_bytes = kInt4 ? 256 : 512;
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* w = a.w + o * a.w_row_bytes;
    const uint16_t* ws = a.w_scales + o * groups;
    __m512 acc[R];
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t s = 0; s < blocks; ++s) {
      __m512i v[8];
      load_block<kInt4>(w + s * block_bytes, v);
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ws + 16 * s)));
      KYUTAI_UNROLL
      for (int r = 0; r < R; ++r) {
        const int8_t* xq = a.xq + r * a.in_padded + 512 * s;
        const int64_t gi = r * groups + 16 * s;
        __m512i dot = _mm512_loadu_si512(a.xbias + gi);
        KYUTAI_UNROLL
        for (int k = 0; k < 8; ++k) dot = _mm512_dpbusd_epi32(dot, v[k], _mm512_loadu_si512(xq + 64 * k));
        const __m512 scale = _mm512_mul_ps(dw, _mm512_loadu_ps(a.xd + gi));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[r]);
      }
    }
    KYUTAI_UNROLL
    for (int r = 0; r < R; ++r) a.y[r * a.y_stride + o] = _mm512_reduce_add_ps(acc[r]);
  }
}

// quantize_row_scalar's arithmetic on 32 values at once; vcvtps2dq rounds half to even like
// the scalar code (MXCSR's default mode), and |x * 127 / max| <= 127 needs no clamp. The
// group's 8 four-byte chunks are scattered 64 bytes apart (the interleaved layout).
void quantize_row(const float* x, int64_t in_padded, int32_t offset, int8_t* q, float* d,
                  int32_t* bias) {
  const __m256i chunk_index = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
  for (int64_t g = 0; g < in_padded / 32; ++g) {
    const __m512 v0 = _mm512_loadu_ps(x + 32 * g), v1 = _mm512_loadu_ps(x + 32 * g + 16);
    const float amax = _mm512_reduce_max_ps(
        _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    d[g] = amax / 127.0f;
    const __m512 inv_d = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inv_d));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inv_d));
    bias[g] = -offset * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    const __m256i bytes = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm512_cvtsepi32_epi8(q0)), _mm512_cvtsepi32_epi8(q1), 1);
    _mm256_i32scatter_epi32(q + (g / 16) * 512 + (g % 16) * 4, chunk_index, bytes, 4);
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

const KernelTable& avx512_kernels() {
  static const KernelTable table{quantize_row, float32_range, bfloat16_range, int8_range, int4_range};
  return table;
}

}  // namespace kyutai::kernels::detail
