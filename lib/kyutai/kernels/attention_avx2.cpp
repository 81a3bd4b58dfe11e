// The AVX2 attention head (AVX2, FMA), for dims that are a multiple of 16 (the 7B's and the
// STT models' 128, Mimi's 64) up to 512, on CPUs without AVX-512: the arithmetic of
// attention_avx512.cpp on 8 lanes. Without it such a CPU took the portable head, whose
// per-element loads and exp() made a long context cost more than reading it. Compiled with the
// AVX2 unit's flags, so everything here but attend_head_avx2 has internal linkage, and it calls
// only intrinsics and C functions (see kernel_table.h).
#include <math.h>

#include "kyutai/kernels/kernel_table.h"
#include "kyutai/kernels/simd_avx2.h"

namespace kyutai::kernels::detail {
namespace {

// 8 lanes of a cache row at `offset`, as float32 (an Int8 row without its scale).
__m256 load8(const void* base, KvFormat format, int64_t offset) {
  if (format == KvFormat::Float32) return _mm256_loadu_ps(static_cast<const float*>(base) + offset);
  if (format == KvFormat::Int8)
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
        reinterpret_cast<const __m128i*>(static_cast<const int8_t*>(base) + offset))));
  return Avx2::widen_bf16(static_cast<const uint16_t*>(base) + offset);
}

// x rounded to bfloat16 and back, bit for bit as half.h's float_to_bf16 (round to nearest even,
// a NaN stays a quiet NaN).
__m256 round_bf16(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd));
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i quiet = _mm256_or_si256(u, _mm256_set1_epi32(0x400000));
  const __m256i bits = _mm256_blendv_epi8(rounded, quiet, nan);
  return _mm256_castsi256_ps(_mm256_and_si256(bits, _mm256_set1_epi32(~0xffff)));
}

// e^x for 8 lanes, x <= 0: 2^(x log2 e) as 2^n times a degree-7 Taylor polynomial of 2^f,
// |f| <= 1/2 (relative error below 1e-8 before float32 rounding), 2^n built in the exponent
// bits. x is clamped at -87.3 (n >= -126, so 2^n stays a normal number): e^-87.3 is 1e-38, and
// the largest score's numerator is 1.
__m256 exp8(__m256 x) {
  static constexpr float kTaylor[] = {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6,
                                      0.5f,       1.0f,       1.0f};
  const __m256 t = _mm256_max_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                 _mm256_set1_ps(-126.0f));
  const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_mul_ps(_mm256_sub_ps(t, n), _mm256_set1_ps(0.693147180559945309f));
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  for (float c : kTaylor) p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(c));
  const __m256i two_n =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(two_n));
}

float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// scores[j] = e^(scores[j] - max), returns their sum.
float softmax_numerators(float* scores, int64_t keys) {
  __m256 top = _mm256_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 8 <= keys; j += 8) top = _mm256_max_ps(top, _mm256_loadu_ps(scores + j));
  float m = hmax(top);
  for (; j < keys; ++j) m = m < scores[j] ? scores[j] : m;
  const __m256 mv = _mm256_set1_ps(m);
  __m256 sum = _mm256_setzero_ps();
  for (j = 0; j + 8 <= keys; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + j), mv));
    _mm256_storeu_ps(scores + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = Avx2::hsum(sum);
  for (; j < keys; ++j) total += scores[j] = expf(scores[j] - m);
  return total;
}

// q . k[j] with float32 FMAs on the widened row, four keys at a time so the reductions overlap;
// an Int8 row's score times its scale. A bfloat16 cache multiplies a bfloat16 query, as the
// portable path does.
void scores_of(const float* q, const void* k, KvFormat format, const float* k_scales, int64_t keys,
               int64_t dim, float scale, float* scores) {
  float rounded[512];
  if (format == KvFormat::BFloat16) {
    for (int64_t d = 0; d < dim; d += 8)
      _mm256_storeu_ps(rounded + d, round_bf16(_mm256_loadu_ps(q + d)));
    q = rounded;
  }
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    for (int64_t d = 0; d < dim; d += 8) {
      const __m256 qv = _mm256_loadu_ps(q + d);
      for (int r = 0; r < 4; ++r)
        a[r] = _mm256_fmadd_ps(qv, load8(k, format, (j + r) * dim + d), a[r]);
    }
    for (int r = 0; r < 4; ++r)
      scores[j + r] =
          k_scales ? Avx2::hsum(a[r]) * k_scales[j + r] * scale : Avx2::hsum(a[r]) * scale;
  }
  for (; j < keys; ++j) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t d = 0; d < dim; d += 8)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8(k, format, j * dim + d), acc);
    scores[j] = k_scales ? Avx2::hsum(acc) * k_scales[j] * scale : Avx2::hsum(acc) * scale;
  }
}

// out[d0 .. d0 + 8N) = sum_j p_j v[j] with the N vectors of that slice in registers across the
// keys (a whole row at dim 128 would need all 16 registers, and so went through memory at every
// key): the same FMAs in the same order per element as a whole-row loop.
template <int N>
void values_slice(const void* v, KvFormat format, const float* scores, const float* v_scales,
                  float inv, int64_t keys, int64_t dim, int64_t d0, float* out) {
  __m256 acc[N];
  _Pragma("GCC unroll 8") for (int c = 0; c < N; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t j = 0; j < keys; ++j) {
    const __m256 p = _mm256_set1_ps(v_scales ? scores[j] * inv * v_scales[j] : scores[j] * inv);
    _Pragma("GCC unroll 8") for (int c = 0; c < N; ++c) acc[c] =
        _mm256_fmadd_ps(p, load8(v, format, j * dim + d0 + 8 * c), acc[c]);
  }
  _Pragma("GCC unroll 8") for (int c = 0; c < N; ++c) _mm256_storeu_ps(out + d0 + 8 * c, acc[c]);
}

}  // namespace

void attend_head_avx2(const float* q, const void* k, const void* v, KvFormat format, int64_t keys,
                      int64_t dim, float scale, float* scores, float* out, const float* k_scales,
                      const float* v_scales) {
  scores_of(q, k, format, format == KvFormat::Int8 ? k_scales : nullptr, keys, dim, scale, scores);
  const float inv = 1.0f / softmax_numerators(scores, keys);
  // Slices of 64 values (8 registers), the last one 16, 32 or 48 (dim is a multiple of 16).
  for (int64_t d0 = 0; d0 < dim; d0 += 64) {
    switch ((dim - d0 < 64 ? dim - d0 : 64) / 16) {
      case 1:
        values_slice<2>(v, format, scores, v_scales, inv, keys, dim, d0, out);
        break;
      case 2:
        values_slice<4>(v, format, scores, v_scales, inv, keys, dim, d0, out);
        break;
      case 3:
        values_slice<6>(v, format, scores, v_scales, inv, keys, dim, d0, out);
        break;
      default:
        values_slice<8>(v, format, scores, v_scales, inv, keys, dim, d0, out);
        break;
    }
  }
}

}  // namespace kyutai::kernels::detail
