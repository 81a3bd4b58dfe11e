#include "kyutai/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kyutai/kernels/half.h"
#include "kyutai/kernels/kernel_table.h"
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

}  // namespace

void attend_step(const float* q, const void* k, const void* v, KvFormat format, int64_t heads,
                 int64_t capacity, int64_t keys, int64_t dim, float scale, float* out) {
  // The instruction set's head where it has one and the dims suit it, else the portable one.
  const detail::AttendHead wide =
      dim % 16 == 0 && dim <= 512 ? detail::kernels_for(current_isa()).attend_head : nullptr;
  const size_t element = format == KvFormat::Float32 ? 4 : 2;
  const int parts = static_cast<int>(std::min<int64_t>(heads, num_threads()));
  parallel_ranges(heads, parts, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(keys));
    for (int64_t h = begin; h < end; ++h) {
      const size_t head = static_cast<size_t>(h * capacity * dim) * element;
      const void* kh = static_cast<const char*>(k) + head;
      const void* vh = static_cast<const char*>(v) + head;
      if (wide)
        wide(q + h * dim, kh, vh, format, keys, dim, scale, scores.data(), out + h * dim);
      else
        head_scalar(q + h * dim, kh, vh, format, keys, dim, scale, scores.data(), out + h * dim);
    }
  });
}

}  // namespace kyutai::kernels
