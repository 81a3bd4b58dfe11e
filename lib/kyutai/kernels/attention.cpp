#include "kyutai/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kyutai/error.h"
#include "kyutai/kernels/half.h"
#include "kyutai/kernels/kernel_table.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/kernels/thread_pool.h"

namespace kyutai::kernels {

namespace {

// Row j of a head's keys or values, as float32, into `row` (an Int8 row without its scale).
void load_row(const void* base, KvFormat format, int64_t index, int64_t dim, float* row) {
  switch (format) {
    case KvFormat::Float32:
      std::memcpy(row, static_cast<const float*>(base) + index * dim, 4 * dim);
      return;
    case KvFormat::BFloat16: {
      const uint16_t* src = static_cast<const uint16_t*>(base) + index * dim;
      for (int64_t d = 0; d < dim; ++d) row[d] = bf16_to_float(src[d]);
      return;
    }
    case KvFormat::Int8: {
      const int8_t* src = static_cast<const int8_t*>(base) + index * dim;
      for (int64_t d = 0; d < dim; ++d) row[d] = src[d];
      return;
    }
  }
}

// Portable path: the same arithmetic in plain loops.
void head_scalar(const float* q_in, const void* k, const void* v, KvFormat format, int64_t keys,
                 int64_t dim, float scale, float* scores, float* out, const float* k_scales,
                 const float* v_scales) {
  std::vector<float> row(static_cast<size_t>(dim)), q(q_in, q_in + dim);
  if (format == KvFormat::BFloat16)
    for (float& x : q) x = bf16_to_float(float_to_bf16(x));
  for (int64_t j = 0; j < keys; ++j) {
    load_row(k, format, j, dim, row.data());
    float s = 0;
    for (int64_t d = 0; d < dim; ++d) s += q[d] * row[d];
    scores[j] = k_scales ? s * k_scales[j] * scale : s * scale;
  }
  const float top = *std::max_element(scores, scores + keys);
  float total = 0;
  for (int64_t j = 0; j < keys; ++j) total += scores[j] = std::exp(scores[j] - top);
  std::fill(out, out + dim, 0.0f);
  for (int64_t j = 0; j < keys; ++j) {
    load_row(v, format, j, dim, row.data());
    const float p = v_scales ? scores[j] / total * v_scales[j] : scores[j] / total;
    for (int64_t d = 0; d < dim; ++d) out[d] += p * row[d];
  }
}

size_t element_bytes(KvFormat format) {
  switch (format) {
    case KvFormat::Float32: return 4;
    case KvFormat::BFloat16: return 2;
    case KvFormat::Int8: return 1;
  }
  return 0;
}

}  // namespace

void quantize_kv_rows(const float* x, int64_t rows, int64_t dim, int8_t* q, float* scales) {
  for (int64_t r = 0; r < rows; ++r, x += dim, q += dim) {
    float amax = 0.0f;
    for (int64_t d = 0; d < dim; ++d) amax = std::max(amax, std::fabs(x[d]));
    const float s = amax / 127.0f;
    const float inv = s != 0.0f ? 1.0f / s : 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      q[d] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, std::nearbyint(x[d] * inv))));
    scales[r] = s;
  }
}

void attend_step(const float* q, const void* k, const void* v, KvFormat format, int64_t heads,
                 int64_t capacity, int64_t keys, int64_t dim, float scale, float* out,
                 const float* k_scales, const float* v_scales) {
  if (format == KvFormat::Int8 && (k_scales == nullptr || v_scales == nullptr))
    throw ConfigError("kernels: an int8 KV cache needs its scales");
  // The instruction set's head where it has one and the dims suit it, else the portable one.
  const detail::AttendHead wide =
      dim % 16 == 0 && dim <= 512 ? detail::kernels_for(current_isa()).attend_head : nullptr;
  const size_t element = element_bytes(format);
  const int parts = static_cast<int>(heads);  // claimed one head at a time (thread_pool.h)
  parallel_ranges(heads, parts, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(keys));
    for (int64_t h = begin; h < end; ++h) {
      const size_t head = static_cast<size_t>(h * capacity * dim) * element;
      const void* kh = static_cast<const char*>(k) + head;
      const void* vh = static_cast<const char*>(v) + head;
      const float* ks = k_scales ? k_scales + h * capacity : nullptr;
      const float* vs = v_scales ? v_scales + h * capacity : nullptr;
      (wide ? wide : head_scalar)(q + h * dim, kh, vh, format, keys, dim, scale, scores.data(),
                                  out + h * dim, ks, vs);
    }
  });
}

}  // namespace kyutai::kernels
