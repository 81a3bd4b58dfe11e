#include "kyutai/model/ops.h"

#include <ATen/ATen.h>

#include "kyutai/error.h"

namespace kyutai::ops {

at::Tensor activation(const at::Tensor& x, Activation kind) {
  switch (kind) {
    case Activation::gelu:
      return at::gelu(x);
    case Activation::silu:
      return at::silu(x);
    case Activation::relu:
      return at::relu(x);
    case Activation::sigmoid:
      return at::sigmoid(x);
    case Activation::tanh:
      return at::tanh(x);
  }
  throw Error("unknown activation");  // unreachable: configs hold only the values above
}

}  // namespace kyutai::ops
