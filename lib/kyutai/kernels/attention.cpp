#include "kyutai/kernels/attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kyutai/kernels/half.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/kernels/thread_pool.h"

namespace kyutai::kernels {

namespace {

// Row j of a head's keys or values, as float32, into `row`.
void load_row(const void* base, KvFormat format, int64_t index, int64_t dim, float* row) {
  if (format == KvFormat::Float32) {
    std::memcpy(row, static_cast<const float*>(base) + index * dim, 4 * dim);
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(base) + index * dim;
  for (int64_t d = 0; d < dim; ++d) row[d] = bf16_to_float(src[d]);
}

// Portable path: the same arithmetic in plain loops.
void head_scalar(const float* q_in, const void* k, const void* v, KvFormat format, int64_t keys,
                 int64_t dim, float scale, float* scores, float* out) {
  std::vector<float> row(static_cast<size_t>(dim)), q(q_in, q_in + dim);
  if (format == KvFormat::BFloat16)
    for (float& x : q) x = bf16_to_float(float_to_bf16(x));
  for (int64_t j = 0; j < keys; ++j) {
    load_row(k, format, j, dim, row.data());
    float s = 0;
    for (int64_t d = 0; d < dim; ++d) s += q[d] * row[d];
    scores[j] = s * scale;
  }
  const float top = *std::max_element(scores, scores + keys);
  float total = 0;
  for (int64_t j = 0; j < keys; ++j) total += scores[j] = std::exp(scores[j] - top);
  std::fill(out, out + dim, 0.0f);
  for (int64_t j = 0; j < keys; ++j) {
    load_row(v, format, j, dim, row.data());
    const float p = scores[j] / total;
    for (int64_t d = 0; d < dim; ++d) out[d] += p * row[d];
  }
}

// 16 lanes of row j at offset d, as float32.
__attribute__((target("avx512f,avx512bw"))) inline __m512 load16(const void* base, KvFormat format,
                                                                 int64_t offset) {
  if (format == KvFormat::Float32) return _mm512_loadu_ps(static_cast<const float*>(base) + offset);
  const __m256i half = _mm256_loadu_si256(
      reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + offset));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline __m512bh bf16_row(const uint16_t* p) {
  return (__m512bh)_mm512_loadu_si512(p);
}

// e^x for 16 lanes: 2^(x log2 e) as 2^n times a degree-7 Taylor polynomial of 2^f, |f| <= 1/2
// (relative error below 1e-8 before float32 rounding). A scalar exp per cached key would cost
// more than reading the key.
__attribute__((target("avx512f"))) inline __m512 exp16(__m512 x) {
  const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)),
                                 _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_mul_ps(_mm512_sub_ps(t, n), _mm512_set1_ps(0.693147180559945309f));
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  for (float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

// scores[j] = e^(scores[j] - max), returns their sum.
__attribute__((target("avx512f"))) float softmax_numerators(float* scores, int64_t keys) {
  __m512 top = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= keys; j += 16) top = _mm512_max_ps(top, _mm512_loadu_ps(scores + j));
  float m = _mm512_reduce_max_ps(top);
  for (; j < keys; ++j) m = std::max(m, scores[j]);
  const __m512 mv = _mm512_set1_ps(m);
  __m512 sum = _mm512_setzero_ps();
  for (j = 0; j + 16 <= keys; j += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(scores + j), mv));
    _mm512_storeu_ps(scores + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  float total = _mm512_reduce_add_ps(sum);
  for (; j < keys; ++j) total += scores[j] = std::exp(scores[j] - m);
  return total;
}

// q . k[j] for a bfloat16 cache with vdpbf16ps: q rounded to bfloat16 once, then 32 products a
// instruction, four keys at a time so the reductions overlap.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void bf16_scores(
    const float* q, const uint16_t* k, int64_t keys, int64_t dim, float scale, float* scores) {
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

// AVX-512 path for dims that are a multiple of 16 (the 7B's 128, Mimi's 64).
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void head_avx512(
    const float* q, const void* k, const void* v, KvFormat format, int64_t keys, int64_t dim,
    float scale, float* scores, float* out) {
  if (format == KvFormat::BFloat16 && dim % 32 == 0) {
    bf16_scores(q, static_cast<const uint16_t*>(k), keys, dim, scale, scores);
  } else {
    // A bfloat16 cache multiplies a bfloat16 query, as the scalar path and vdpbf16ps do.
    float rounded[512];
    if (format == KvFormat::BFloat16) {
      for (int64_t d = 0; d < dim; ++d) rounded[d] = bf16_to_float(float_to_bf16(q[d]));
      q = rounded;
    }
    for (int64_t j = 0; j < keys; ++j) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t d = 0; d < dim; d += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), load16(k, format, j * dim + d), acc);
      scores[j] = _mm512_reduce_add_ps(acc) * scale;
    }
  }
  const float total = softmax_numerators(scores, keys);
  std::fill(out, out + dim, 0.0f);
  const float inv = 1.0f / total;
  // Keys outer, so the values stream once in order; `out` stays in L1.
  for (int64_t j = 0; j < keys; ++j) {
    const __m512 p = _mm512_set1_ps(scores[j] * inv);
    for (int64_t d = 0; d < dim; d += 16)
      _mm512_storeu_ps(
          out + d, _mm512_fmadd_ps(p, load16(v, format, j * dim + d), _mm512_loadu_ps(out + d)));
  }
}

}  // namespace

void attend_step(const float* q, const void* k, const void* v, KvFormat format, int64_t heads,
                 int64_t capacity, int64_t keys, int64_t dim, float scale, float* out) {
  const bool wide = dim % 16 == 0 && dim <= 512 && current_isa() == Isa::Avx512;
  const size_t element = format == KvFormat::Float32 ? 4 : 2;
  const int parts = static_cast<int>(std::min<int64_t>(heads, num_threads()));
  parallel_ranges(heads, parts, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(keys));
    for (int64_t h = begin; h < end; ++h) {
      const size_t head = static_cast<size_t>(h * capacity * dim) * element;
      const void* kh = static_cast<const char*>(k) + head;
      const void* vh = static_cast<const char*>(v) + head;
      if (wide)
        head_avx512(q + h * dim, kh, vh, format, keys, dim, scale, scores.data(), out + h * dim);
      else
        head_scalar(q + h * dim, kh, vh, format, keys, dim, scale, scores.data(), out + h * dim);
    }
  });
}

}  // namespace kyutai::kernels
