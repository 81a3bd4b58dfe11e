// Internal: the activations the configurations name, in one place. Products by a weight go
// through LinearWeight (weights/linear_weight.h) or, for a plain tensor, weights/dense_product.h.
#pragma once

#include <ATen/core/Tensor.h>

#include "kyutai/config.h"

namespace kyutai::ops {

at::Tensor activation(const at::Tensor& x, Activation kind);

}  // namespace kyutai::ops
