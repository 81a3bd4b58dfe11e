// Internal: products by a plain weight tensor, and the choice of BLAS call that matters for
// their speed: behind LinearWeight (past its kernels' rows, and on a GPU) and the convolutions.
//
// At batch 1 most products are "skinny": a large weight times a handful of columns. OpenBLAS's
// gemm handles those at a fraction of memory bandwidth, while its gemv streams the weight at
// close to it, so products with few columns are done as one gemv per column
// (docs/PERFORMANCE.md has the measurements).
#pragma once

#include <ATen/core/Tensor.h>

namespace kyutai::dense {

// Up to this many columns, N gemv calls beat one gemm (measured on 512..8192-row weights).
constexpr int64_t kMaxGemvColumns = 4;

// w [M, K] @ x [K, N] -> [M, N].
at::Tensor matmul_wx(const at::Tensor& w, const at::Tensor& x);

// x [..., in] @ w[out, in]^T -> [..., out], no bias.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w);

}  // namespace kyutai::dense
