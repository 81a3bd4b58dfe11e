// AVX-512 kernels (F, BW, VL, VNNI, BF16): matmul_body.h on the Avx512 traits, an activation
// quantizer of this set's own, and attention_avx512.cpp's head. Compiled with those target
// flags, so everything here has internal linkage and only the table is visible (see
// kernel_table.h).
#include "kyutai/kernels/simd_avx512.h"
// The bodies after the traits they are instantiated with.
#include "kyutai/kernels/matmul_body.h"

namespace kyutai::kernels::detail {
namespace {

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

}  // namespace

const KernelTable& avx512_kernels() {
  static constexpr KernelTable table = matmul_table<Avx512>(quantize_row, attend_head_avx512);
  return table;
}

}  // namespace kyutai::kernels::detail
