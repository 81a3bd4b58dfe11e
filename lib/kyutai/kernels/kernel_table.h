// The contract between the dispatchers (matmul.cpp, attention.cpp) and the per-instruction-set
// kernels. Each instruction set is one unit compiled with its own target flags (matmul_avx2.cpp,
// attention_avx2.cpp, matmul_avx512.cpp, attention_avx512.cpp): it includes the kernel bodies
// written once (matmul_body.h) with its vector traits (simd_<isa>.h) and shows only its table (an
// attention unit, its head, which the table holds). Everything else there has internal linkage, and
// no inline function is shared with generic code (no <algorithm>, no half.h): the linker could pick
// that function's copy compiled with AVX-512 instructions for a CPU without them. Plain structs
// only here, for the same reason.
#pragma once

#include <cstdint>

#include "kyutai/kernels/attention.h"

namespace kyutai::kernels {
enum class Isa;
}

namespace kyutai::kernels::detail {

// One product's operands, prepared once per call for up to 8 rows of x.
struct MatmulArgs {
  int64_t rows;       // 1..8
  int64_t in_padded;  // inputs per weight row and per prepared row of x
  const uint8_t* w;   // packed weight data, row 0
  const uint16_t* w_scales;  // float16 [out, in_padded / 32] (quantized formats)
  int64_t w_row_bytes;
  // Elements from one prepared row of x (xf, xb, xq) to the next: in_padded and at least a
  // cache line more (64 elements for the quantized formats, whose xf shares the pitch), so that the
  // rows of x do not all fall in the same sets of the level-1 cache (with in_padded a multiple of
  // 4096 bytes, 8 rows would fill every way of the sets they use).
  int64_t x_pitch;
  // Float32: x [rows, x_pitch]. BFloat16: bfloat16 bits [rows, x_pitch].
  const float* xf;
  const uint16_t* xb;
  // Int8/Int4: x quantized per group of 32, columns interleaved like the weight
  // [rows, x_pitch]; per group the scale and the offset correction -offset * sum(q)
  // [rows, in_padded / 32].
  const int8_t* xq;
  const float* xd;
  const int32_t* xbias;
  float* y;
  int64_t y_stride;
};

// Computes y[r, o] for o in [o0, o1) and all rows.
using RangeKernel = void (*)(const MatmulArgs& args, int64_t o0, int64_t o1);

// A dense float32 product of many columns (a convolution's unfolded signal, x [k, columns]):
// y[o * y_stride + c] = sum_i w[o * k + i] * x[i * x_stride + c] for o in [o0, o1) and c in
// [c0, c1). Each element is one chain of fused multiply-adds in the order of i, so every
// instruction set gives the same bits, wherever the element falls in a tile.
struct DenseArgs {
  const float* w;
  int64_t k;
  const float* x;
  int64_t x_stride;
  float* y;
  int64_t y_stride;
};
using DenseKernel = void (*)(const DenseArgs& args, int64_t o0, int64_t o1, int64_t c0, int64_t c1);

// Quantizes one zero-padded row of x [in_padded] to Q8_0 in the interleaved layout (see
// MatmulArgs::xq); per group the scale d and -offset * sum(q). Every instruction set gives
// the same bits (IEEE max, division, product, and round-half-even conversion).
using QuantizeRow = void (*)(const float* x, int64_t in_padded, int32_t offset, int8_t* q, float* d,
                             int32_t* bias);

// One head of attend_step (attention.h) for a dim that is a multiple of 16 and at most 512:
// scores [keys] is scratch, out [dim] the result; k_scales and v_scales [keys] for Int8.
using AttendHead = void (*)(const float* q, const void* k, const void* v, KvFormat format,
                            int64_t keys, int64_t dim, float scale, float* scores, float* out,
                            const float* k_scales, const float* v_scales);

struct KernelTable {
  QuantizeRow quantize_row;
  RangeKernel float32;
  RangeKernel bfloat16;
  RangeKernel int8;
  RangeKernel int4;
  AttendHead attend_head;  // null: the portable head in attention.cpp
  DenseKernel dense;
};

void quantize_row_scalar(const float* x, int64_t in_padded, int32_t offset, int8_t* q, float* d,
                         int32_t* bias);

const KernelTable& scalar_kernels();
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();
// The table of an instruction set (defined in matmul.cpp, which selects the set).
const KernelTable& kernels_for(Isa isa);

// The AVX-512 unit's attention head (attention_avx512.cpp).
void attend_head_avx512(const float* q, const void* k, const void* v, KvFormat format,
                        int64_t keys, int64_t dim, float scale, float* scores, float* out,
                        const float* k_scales, const float* v_scales);
// The AVX2 unit's attention head (attention_avx2.cpp).
void attend_head_avx2(const float* q, const void* k, const void* v, KvFormat format, int64_t keys,
                      int64_t dim, float scale, float* scores, float* out, const float* k_scales,
                      const float* v_scales);

// Where column c of a quantized row is stored: super-blocks of 16 groups are interleaved so
// that 4 consecutive bytes of one group share a 32-bit lane (see docs/QUANTIZATION.md).
// Defined in pack.cpp (not inline, for the reason above).
int64_t interleaved_index(int64_t c);

}  // namespace kyutai::kernels::detail
