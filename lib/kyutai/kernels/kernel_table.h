// The contract between the dispatcher (matmul.cpp) and the per-instruction-set kernels.
// Plain structs only: the per-ISA translation units are compiled with their own target flags,
// and an inline function shared with generic code could be emitted with AVX-512 instructions
// and picked by the linker for a CPU without them.
#pragma once

#include <cstdint>

namespace kyutai::kernels::detail {

// One product's operands, prepared once per call for up to 8 rows of x.
struct MatmulArgs {
  int64_t rows;       // 1..8
  int64_t in_padded;  // inputs per weight row and per prepared row of x
  const uint8_t* w;   // packed weight data, row 0
  const uint16_t* w_scales;  // float16 [out, in_padded / 32] (quantized formats)
  int64_t w_row_bytes;
  // Float32: x [rows, in_padded]. BFloat16: bfloat16 bits [rows, in_padded].
  const float* xf;
  const uint16_t* xb;
  // Int8/Int4: x quantized per group of 32, columns interleaved like the weight
  // [rows, in_padded]; per group the scale and the offset correction -offset * sum(q)
  // [rows, in_padded / 32].
  const int8_t* xq;
  const float* xd;
  const int32_t* xbias;
  float* y;
  int64_t y_stride;
};

// Computes y[r, o] for o in [o0, o1) and all rows.
using RangeKernel = void (*)(const MatmulArgs& args, int64_t o0, int64_t o1);

// Quantizes one zero-padded row of x [in_padded] to Q8_0 in the interleaved layout (see
// MatmulArgs::xq); per group the scale d and -offset * sum(q). Every instruction set gives
// the same bits (IEEE max, division, product, and round-half-even conversion).
using QuantizeRow = void (*)(const float* x, int64_t in_padded, int32_t offset, int8_t* q, float* d,
                             int32_t* bias);

struct KernelTable {
  QuantizeRow quantize_row;
  RangeKernel float32;
  RangeKernel bfloat16;
  RangeKernel int8;
  RangeKernel int4;
};

// Defines a RangeKernel `name` that runs kernel<R> for the call's row count (1..8). A macro,
// not a template, so that nothing with external linkage is shared by the per-ISA units.
#define KYUTAI_ROWS_DISPATCH(name, kernel)                              \
  void name(const MatmulArgs& a, int64_t o0, int64_t o1) {              \
    switch (a.rows) {                                                   \
      case 1: return kernel<1>(a, o0, o1);                              \
      case 2: return kernel<2>(a, o0, o1);                              \
      case 3: return kernel<3>(a, o0, o1);                              \
      case 4: return kernel<4>(a, o0, o1);                              \
      case 5: return kernel<5>(a, o0, o1);                              \
      case 6: return kernel<6>(a, o0, o1);                              \
      case 7: return kernel<7>(a, o0, o1);                              \
      default: return kernel<8>(a, o0, o1);                             \
    }                                                                   \
  }

void quantize_row_scalar(const float* x, int64_t in_padded, int32_t offset, int8_t* q, float* d,
                         int32_t* bias);

const KernelTable& scalar_kernels();
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();

// Where column c of a quantized row is stored: super-blocks of 16 groups are interleaved so
// that 4 consecutive bytes of one group share a 32-bit lane (see docs/QUANTIZATION.md).
// Defined in pack.cpp (not inline, for the reason above).
int64_t interleaved_index(int64_t c);

}  // namespace kyutai::kernels::detail
