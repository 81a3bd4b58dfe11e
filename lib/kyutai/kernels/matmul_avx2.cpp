// AVX2 + FMA + F16C kernels, for CPUs without AVX-512: matmul_body.h on the Avx2 traits, an
// activation quantizer of this set's own, and the AVX2 attention head (attention_avx2.cpp).
// Compiled with those target flags, so everything here has internal linkage and only the table is
// visible (see kernel_table.h).
#include "kyutai/kernels/simd_avx2.h"
// The bodies after the traits they are instantiated with.
#include "kyutai/kernels/matmul_body.h"

namespace kyutai::kernels::detail {
namespace {

// quantize_row_scalar's arithmetic on 32 values at once, as the AVX-512 one: for finite
// activations the same bits (vcvtps2dq rounds half to even like the scalar code, MXCSR's default
// mode, and |x * 127 / max| <= 127 needs no clamp; an infinity or a NaN, which only a model that
// has already failed writes, comes out otherwise). The two saturating packs interleave the 128-bit halves (chunks 0 2 4 6 1 3 5 7), put
// back in order before the group's 8 four-byte chunks go 64 bytes apart (the interleaved
// layout).
void quantize_row(const float* x, int64_t in_padded, int32_t offset, int8_t* q, float* d,
                  int32_t* bias) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t g = 0; g < in_padded / 32; ++g) {
    __m256 v[4];
    __m256 top = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + 32 * g + 8 * i);
      top = _mm256_max_ps(top, _mm256_and_ps(v[i], magnitude));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(top), _mm256_extractf128_ps(top, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    d[g] = amax / 127.0f;
    const __m256 inv_d = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    __m256i qi[4];
    for (int i = 0; i < 4; ++i) qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv_d));
    const __m256i sum =
        _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    bias[g] = -offset * _mm_cvtsi128_si32(s);
    const __m256i bytes = _mm256_permutevar8x32_epi32(
        _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3])),
        order);
    alignas(32) int32_t chunks[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(chunks), bytes);
    int8_t* dst = q + (g / 16) * 512 + (g % 16) * 4;
    for (int c = 0; c < 8; ++c) __builtin_memcpy(dst + 64 * c, chunks + c, 4);
  }
}

}  // namespace

const KernelTable& avx2_kernels() {
  static constexpr KernelTable table = matmul_table<Avx2>(quantize_row, attend_head_avx2);
  return table;
}

}  // namespace kyutai::kernels::detail
