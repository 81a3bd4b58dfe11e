#include "kyutai/ops.h"

#include <ATen/ATen.h>

#include "kyutai/error.h"

namespace kyutai::ops {

at::Tensor linear(const at::Tensor& x, const at::Tensor& w) {
  // OpenBLAS's gemv streams a float32 weight at close to memory bandwidth, while a one-row gemm
  // (what at::linear does) reaches a quarter of it; see docs/PERFORMANCE.md.
  if (x.numel() == x.size(-1) && x.scalar_type() == at::kFloat && x.device().is_cpu()) {
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape.back() = w.size(0);
    return at::mv(w, x.reshape({-1})).view(shape);
  }
  return at::linear(x, w);
}

at::Tensor activation(const at::Tensor& x, const std::string& name) {
  if (name == "gelu") return at::gelu(x);
  if (name == "silu") return at::silu(x);
  if (name == "relu") return at::relu(x);
  if (name == "sigmoid") return at::sigmoid(x);
  if (name == "tanh") return at::tanh(x);
  throw ConfigError("unsupported activation '" + name + "'");
}

}  // namespace kyutai::ops
