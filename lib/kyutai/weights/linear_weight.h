// Internal: the weight of a product layer (x [..., in] -> [..., out]), as loaded and then packed
// for the CPU kernels of kernels/kernels.h in the model's weight format. The only way the model
// multiplies by a weight.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "kyutai/weights.h"

namespace kyutai {

namespace kernels {
struct PackedWeight;
}

class LinearWeight {
 public:
  // Up to this many rows a product runs on the kernels, whose result for one row does not
  // depend on the other rows; batched steps of several conversations stay within it.
  static constexpr int64_t kExactRows = 16;

  // The declared slot [out, in]: what the loader fills. Once packed into a quantized format it is
  // released, so the checkpoint's copy is not kept.
  at::Tensor tensor;

  // Converts the loaded tensor for the CPU kernels. Float32 and BFloat16 keep their values,
  // Int8 and Int4 are quantized. On a GPU only the float formats exist and `tensor` stays as it
  // is. Throws ConfigError for a CPU-only format off the CPU, and for Auto (resolved before).
  void pack(WeightFormat format);
  // Uses arrays made earlier (for example memory-mapped from the quantized-weights cache).
  void set_packed(std::shared_ptr<const kernels::PackedWeight> packed);
  const std::shared_ptr<const kernels::PackedWeight>& shared_packed() const { return packed_; }

  // x [..., in] (any float dtype) -> [..., out] in x's dtype.
  at::Tensor operator()(const at::Tensor& x) const;
  // The weight as a float tensor [out, in] (dequantized for Int8 / Int4), for saving and tests.
  at::Tensor dense() const;
  // Bytes a product reads: the packed arrays, or the tensor.
  int64_t bytes() const;

 private:
  std::shared_ptr<const kernels::PackedWeight> packed_;
};

}  // namespace kyutai
