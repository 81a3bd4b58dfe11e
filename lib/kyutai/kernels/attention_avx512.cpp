// The AVX-512 attention head (AVX-512 F/BW/BF16 used), for dims that are a multiple of 16 (the
// 7B's 128, Mimi's 64) up to 512. Compiled with the AVX-512 unit's flags, so everything here but
// attend_head_avx512 has internal linkage, and it calls only intrinsics and C functions (see
// kernel_table.h).
#include <math.h>
#include <string.h>

#include "kyutai/kernels/kernel_table.h"
#include "kyutai/kernels/simd_avx512.h"

namespace kyutai::kernels::detail {
namespace {

// 16 lanes of row j at offset d, as float32 (an Int8 row without its scale).
__m512 load16(const void* base, KvFormat format, int64_t offset) {
  if (format == KvFormat::Float32) return _mm512_loadu_ps(static_cast<const float*>(base) + offset);
  if (format == KvFormat::Int8)
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const int8_t*>(base) + offset))));
  const __m256i half = _mm256_loadu_si256(
      reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + offset));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
}

__m512bh bf16_row(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }

// x rounded to bfloat16 and back, bit for bit as half.h's float_to_bf16 (round to nearest even,
// a NaN stays a quiet NaN), which vcvtneps2bf16 is not (it flushes denormals).
__m512 round_bf16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  const __m512i bits = _mm512_mask_or_epi32(rounded, nan, u, _mm512_set1_epi32(0x400000));
  return _mm512_castsi512_ps(_mm512_and_si512(bits, _mm512_set1_epi32(~0xffff)));
}

// e^x for 16 lanes: 2^(x log2 e) as 2^n times a degree-7 Taylor polynomial of 2^f, |f| <= 1/2
// (relative error below 1e-8 before float32 rounding). A scalar exp per cached key would cost
// more than reading the key.
__m512 exp16(__m512 x) {
  static constexpr float kTaylor[] = {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f,
                                      1.0f};
  const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)),
                                 _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_mul_ps(_mm512_sub_ps(t, n), _mm512_set1_ps(0.693147180559945309f));
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  for (float c : kTaylor) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

// scores[j] = e^(scores[j] - max), returns their sum.
float softmax_numerators(float* scores, int64_t keys) {
  __m512 top = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= keys; j += 16) top = _mm512_max_ps(top, _mm512_loadu_ps(scores + j));
  float m = _mm512_reduce_max_ps(top);
  for (; j < keys; ++j) m = m < scores[j] ? scores[j] : m;
  const __m512 mv = _mm512_set1_ps(m);
  __m512 sum = _mm512_setzero_ps();
  for (j = 0; j + 16 <= keys; j += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(scores + j), mv));
    _mm512_storeu_ps(scores + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  float total = _mm512_reduce_add_ps(sum);
  for (; j < keys; ++j) total += scores[j] = expf(scores[j] - m);
  return total;
}

// q . k[j] for a bfloat16 cache with vdpbf16ps: q rounded to bfloat16 once, then 32 products a
// instruction, four keys at a time so the reductions overlap.
void bf16_scores(const float* q, const uint16_t* k, int64_t keys, int64_t dim, float scale,
                 float* scores) {
  __m512bh qb[16];  // dim <= 512
  for (int64_t d = 0; d < dim; d += 32)
    qb[d / 32] = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(q + d + 16), _mm512_loadu_ps(q + d));
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < dim; d += 32) {
      a0 = _mm512_dpbf16_ps(a0, qb[d / 32], bf16_row(k + j * dim + d));
      a1 = _mm512_dpbf16_ps(a1, qb[d / 32], bf16_row(k + (j + 1) * dim + d));
      a2 = _mm512_dpbf16_ps(a2, qb[d / 32], bf16_row(k + (j + 2) * dim + d));
      a3 = _mm512_dpbf16_ps(a3, qb[d / 32], bf16_row(k + (j + 3) * dim + d));
    }
    scores[j] = _mm512_reduce_add_ps(a0) * scale;
    scores[j + 1] = _mm512_reduce_add_ps(a1) * scale;
    scores[j + 2] = _mm512_reduce_add_ps(a2) * scale;
    scores[j + 3] = _mm512_reduce_add_ps(a3) * scale;
  }
  for (; j < keys; ++j) {
    __m512 a = _mm512_setzero_ps();
    for (int64_t d = 0; d < dim; d += 32)
      a = _mm512_dpbf16_ps(a, qb[d / 32], bf16_row(k + j * dim + d));
    scores[j] = _mm512_reduce_add_ps(a) * scale;
  }
}

// q . k[j] for an Int8 cache: float32 FMAs on the widened bytes, four keys at a time so the
// reductions overlap, each times its row's scale.
void int8_scores(const float* q, const int8_t* k, const float* k_scales, int64_t keys,
                 int64_t dim, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
    for (int64_t d = 0; d < dim; d += 16) {
      const __m512 qv = _mm512_loadu_ps(q + d);
      for (int r = 0; r < 4; ++r)
        a[r] = _mm512_fmadd_ps(qv, load16(k, KvFormat::Int8, (j + r) * dim + d), a[r]);
    }
    for (int r = 0; r < 4; ++r) scores[j + r] = _mm512_reduce_add_ps(a[r]) * k_scales[j + r] * scale;
  }
  for (; j < keys; ++j) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < dim; d += 16)
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), load16(k, KvFormat::Int8, j * dim + d), acc);
    scores[j] = _mm512_reduce_add_ps(acc) * k_scales[j] * scale;
  }
}

// q . k[j] with float32 FMAs, 16 at a time. A bfloat16 cache multiplies a bfloat16 query, as
// the portable path and vdpbf16ps do.
void fma_scores(const float* q, const void* k, KvFormat format, int64_t keys, int64_t dim,
                float scale, float* scores) {
  float rounded[512];
  if (format == KvFormat::BFloat16) {
    for (int64_t d = 0; d < dim; d += 16)
      _mm512_storeu_ps(rounded + d, round_bf16(_mm512_loadu_ps(q + d)));
    q = rounded;
  }
  for (int64_t j = 0; j < keys; ++j) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < dim; d += 16)
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), load16(k, format, j * dim + d), acc);
    scores[j] = _mm512_reduce_add_ps(acc) * scale;
  }
}

}  // namespace

void attend_head_avx512(const float* q, const void* k, const void* v, KvFormat format,
                        int64_t keys, int64_t dim, float scale, float* scores, float* out,
                        const float* k_scales, const float* v_scales) {
  if (format == KvFormat::Int8)
    int8_scores(q, static_cast<const int8_t*>(k), k_scales, keys, dim, scale, scores);
  else if (format == KvFormat::BFloat16 && dim % 32 == 0)
    bf16_scores(q, static_cast<const uint16_t*>(k), keys, dim, scale, scores);
  else
    fma_scores(q, k, format, keys, dim, scale, scores);
  const float total = softmax_numerators(scores, keys);
  memset(out, 0, sizeof(float) * static_cast<size_t>(dim));
  const float inv = 1.0f / total;
  // Keys outer, so the values stream once in order; `out` stays in L1.
  for (int64_t j = 0; j < keys; ++j) {
    const __m512 p = _mm512_set1_ps(v_scales ? scores[j] * inv * v_scales[j] : scores[j] * inv);
    for (int64_t d = 0; d < dim; d += 16)
      _mm512_storeu_ps(
          out + d, _mm512_fmadd_ps(p, load16(v, format, j * dim + d), _mm512_loadu_ps(out + d)));
  }
}

}  // namespace kyutai::kernels::detail
