// Internal: the few tensor kernels whose choice matters for speed, in one place.
#pragma once

#include <ATen/core/Tensor.h>

namespace kyutai::ops {

// x [..., in] @ w[out, in]^T -> [..., out], no bias. Batch-1 products use a matrix-vector
// kernel, which reads the weight several times faster than a one-row matrix product.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w);

// Activation by the reference's name: "gelu" (erf form), "silu", "relu", "sigmoid", "tanh".
at::Tensor activation(const at::Tensor& x, const std::string& name);

}  // namespace kyutai::ops
