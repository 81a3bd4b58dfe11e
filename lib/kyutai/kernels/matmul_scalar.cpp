// Portable kernels, for CPUs without AVX2 and as a readable statement of what the SIMD ones
// compute. Same operand layouts; the integer dot products are exact, the float sums differ from
// the SIMD kernels only in their order.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kyutai/kernels/half.h"
#include "kyutai/kernels/kernel_table.h"

namespace kyutai::kernels::detail {
namespace {

// Round half to even for |v| < 2^22 without a libm call: adding 1.5 * 2^23 pushes the fraction
// out (the build does not allow reassociation, so the two additions stay).
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

// Q8_0 for one group of 32 activations: d = max|x| / 127 (float32), q = round(x / d) computed
// as round(x * (127 / max|x|)). Stores q where the interleaved layout puts the group (4 bytes
// every 64) and returns sum(q).
int32_t quantize_group(const float* x, int8_t* q, float* d) {
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
  *d = amax / 127.0f;
  const float inv_d = amax != 0.0f ? 127.0f / amax : 0.0f;
  int32_t sum = 0;
  for (int i = 0; i < 32; ++i) {
    const int qi = static_cast<int>(std::min(127.0f, std::max(-127.0f, round_even(x[i] * inv_d))));
    q[(i / 4) * 64 + i % 4] = static_cast<int8_t>(qi);
    sum += qi;
  }
  return sum;
}

inline float value(float x) { return x; }
inline float value(uint16_t x) { return bf16_to_float(x); }

// Float32 (T = float) and BFloat16 (T = uint16_t bits, widened exactly).
template <class T>
void float_range(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const T* xs;
  if constexpr (std::is_same_v<T, float>) xs = a.xf;
  else xs = a.xb;
  for (int64_t o = o0; o < o1; ++o) {
    const auto* w = reinterpret_cast<const T*>(a.w + o * a.w_row_bytes);
    for (int64_t r = 0; r < a.rows; ++r) {
      const T* x = xs + r * a.x_pitch;
      float acc = 0.0f;
      for (int64_t i = 0; i < a.in_padded; ++i) acc += value(x[i]) * value(w[i]);
      a.y[r * a.y_stride + o] = acc;
    }
  }
}

// The stored value at interleaved position p of a packed row (q + offset).
template <bool kInt4>
int stored(const uint8_t* row, int64_t p) {
  if (!kInt4) return row[p];
  const int64_t k = (p % 512) / 64;
  const uint8_t byte = row[(p / 512) * 256 + (k / 2) * 64 + p % 64];
  return (k % 2) ? byte >> 4 : byte & 0x0f;
}

// Per group: exact integer dot of the stored (offset) weights with q(x), corrected by
// -offset * sum(q(x)), times d(w) * d(x).
template <bool kInt4>
void quantized_range(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const int64_t groups = a.in_padded / 32;
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* w = a.w + o * a.w_row_bytes;
    for (int64_t r = 0; r < a.rows; ++r) {
      const int8_t* xq = a.xq + r * a.x_pitch;
      float acc = 0.0f;
      for (int64_t g = 0; g < groups; ++g) {
        // Within its super-block, group g's 32 values sit at lanes (g % 16) of 8 sub-vectors.
        const int64_t base = (g / 16) * 512 + (g % 16) * 4;
        int32_t dot = a.xbias[r * groups + g];
        for (int64_t k = 0; k < 8; ++k)
          for (int64_t b = 0; b < 4; ++b) {
            const int64_t p = base + k * 64 + b;
            dot += stored<kInt4>(w, p) * xq[p];
          }
        const float scale = half_to_float(a.w_scales[o * groups + g]) * a.xd[r * groups + g];
        acc += static_cast<float>(dot) * scale;
      }
      a.y[r * a.y_stride + o] = acc;
    }
  }
}

}  // namespace

void quantize_row_scalar(const float* x, int64_t in_padded, int32_t offset, int8_t* q, float* d,
                         int32_t* bias) {
  for (int64_t g = 0; g < in_padded / 32; ++g) {
    int8_t* dst = q + (g / 16) * 512 + (g % 16) * 4;
    bias[g] = -offset * quantize_group(x + 32 * g, dst, &d[g]);
  }
}

namespace {

// Dense products (DenseArgs): one fused chain per element, as the SIMD kernels compute it.
void dense_range(const DenseArgs& a, int64_t o0, int64_t o1, int64_t c0, int64_t c1) {
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t c = c0; c < c1; ++c) {
      const float* w = a.w + o * a.k;
      float acc = 0.0f;
      for (int64_t i = 0; i < a.k; ++i) acc = std::fma(w[i], a.x[i * a.x_stride + c], acc);
      a.y[o * a.y_stride + c] = acc;
    }
}

}  // namespace

const KernelTable& scalar_kernels() {
  static const KernelTable table{quantize_row_scalar,
                                 float_range<float>,
                                 float_range<uint16_t>,
                                 quantized_range<false>,
                                 quantized_range<true>,
                                 nullptr,
                                 dense_range};
  return table;
}

}  // namespace kyutai::kernels::detail
