// Internal: the few tensor kernels whose choice matters for speed, in one place.
//
// At batch 1 most products are "skinny": a large weight times a handful of columns. OpenBLAS's
// gemm handles those at a fraction of memory bandwidth, while its gemv streams the weight at
// close to it, so products with few columns are done as one gemv per column
// (docs/PERFORMANCE.md has the measurements).
#pragma once

#include <ATen/core/Tensor.h>

#include "kyutai/config.h"

namespace kyutai {
class LinearWeight;
}

namespace kyutai::ops {

// w [M, K] @ x [K, N] -> [M, N].
at::Tensor matmul_wx(const at::Tensor& w, const at::Tensor& x);

// x [..., in] @ w[out, in]^T -> [..., out], no bias.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w);
// The same with a product layer's weight, in whatever format it is packed.
at::Tensor linear(const at::Tensor& x, const LinearWeight& w);

at::Tensor activation(const at::Tensor& x, Activation kind);

}  // namespace kyutai::ops
