// Weight-format kernels: skinny products y[r, o] = sum_i x[r, i] * W[o, i] for 1 to 8 rows of x,
// with W stored as float32, bfloat16, int8 or int4. Torch-free (plain C++17 + intrinsics), so the
// packed arrays can be saved as safetensors tensors and memory-mapped back. docs/QUANTIZATION.md
// describes the arithmetic and the layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kyutai/weights.h"

namespace kyutai::kernels {

// Instruction sets with their own kernels. Avx512 needs AVX-512 F/BW/VL/VNNI/BF16, Avx2 needs
// AVX2, FMA and F16C. The best one the CPU has is chosen on first use.
enum class Isa { Scalar, Avx2, Avx512 };

const char* isa_name(Isa isa);

// Quantized formats use groups of kGroup inputs, each with one float16 scale; their rows are
// padded with zeros to a whole super-block of kSuperBlock inputs (16 groups).
constexpr int64_t kGroup = 32;
constexpr int64_t kSuperBlock = 512;
static_assert(weight_format_traits(WeightFormat::Int8).group_size == kGroup &&
                  weight_format_traits(WeightFormat::Int4).group_size == kGroup,
              "the kernels' layouts use the table's group size");

// Inputs stored per weight row for `in` logical inputs: a multiple of kSuperBlock for the
// quantized formats, of kGroup for the float ones.
int64_t padded_inputs(WeightFormat format, int64_t in);

// A weight [out, in] in one format (never Auto): `data` holds the values row by row,
// `in_padded` inputs per row (see bytes_per_row), and `scales` the float16 bits
// [out, in_padded / 32] of the quantized formats (null otherwise). The arrays are either owned (made by pack) or views of external
// memory, such as a memory-mapped cache file, kept alive by `owner`. Copies share the arrays.
struct PackedWeight {
  WeightFormat format = WeightFormat::Float32;
  int64_t out = 0;
  int64_t in = 0;
  int64_t in_padded = 0;
  const uint8_t* data = nullptr;
  const uint16_t* scales = nullptr;
  std::shared_ptr<const void> owner;

  // Float32: F32 [out, in_padded]. BFloat16: BF16 [out, in_padded]. Int8: U8 [out, in_padded]
  // (q + 128, columns interleaved). Int4: U8 [out, in_padded / 2] (two nibbles a byte).
  int64_t bytes_per_row() const;
  size_t data_bytes() const { return static_cast<size_t>(out * bytes_per_row()); }
  size_t scale_count() const;  // float16 values in `scales`: out * in_padded / 32, or 0
  size_t total_bytes() const { return data_bytes() + 2 * scale_count(); }

  // Wraps arrays laid out as above (for example from a memory-mapped file) without copying.
  static PackedWeight view(WeightFormat format, int64_t out, int64_t in, const void* data,
                           const uint16_t* scales, std::shared_ptr<const void> owner);
};

// Packs a row-major float32 weight [out, in]. Rows are packed in parallel on the pool.
PackedWeight pack(WeightFormat format, const float* w, int64_t out, int64_t in);
// Same from bfloat16 bits [out, in] as checkpoints ship them, one row converted at a time;
// BFloat16 keeps the bits as they are.
PackedWeight pack_bf16(WeightFormat format, const uint16_t* w, int64_t out, int64_t in);

// y[r * y_stride + o] = sum_i x[r * x_stride + i] * W[o, i] for r < rows, o < w.out. Int8 and
// Int4 quantize each row of x to int8 per group of 32; BFloat16 rounds x to bfloat16; the sums
// are float32. Each element is computed by one thread in an order that depends neither on the
// thread count nor on `rows`, so results are bit-identical whatever the batching. Rows are
// taken 8 at a time: more than 8 rows read the weight once per 8 rows. Thread-safe.
void matmul(const PackedWeight& w, const float* x, int64_t rows, int64_t x_stride, float* y,
            int64_t y_stride);

// y [out, columns] = w [out, k] x [k, columns], all float32 and contiguous: the dense product of
// a convolution's unfolded signal, for many columns (with a few, matmul streams the weight
// better). Each element is one chain of fused multiply-adds in the order of k, so the result
// is the same bits on every instruction set, thread count and column count. Thread-safe.
void matmul_dense(const float* w, int64_t out, int64_t k, const float* x, int64_t columns,
                  float* y);

// Kernel selection. set_isa throws ConfigError if the CPU lacks `isa`.
bool isa_supported(Isa isa);
Isa best_isa();
Isa current_isa();
void set_isa(Isa isa);

// Threads used by matmul and pack: the calling thread plus n - 1 pool workers (default: the
// hardware's thread count).
void set_num_threads(int n);
int num_threads();

// Reference values for tests: row o of the weight as it is multiplied (float32, bfloat16
// rounded, or d * (q - offset)), and a row of x as the kernels multiply it.
void dequantize_row(const PackedWeight& w, int64_t o, double* out);
void round_activations(WeightFormat format, const float* x, int64_t in, double* out);

}  // namespace kyutai::kernels
