#include "kyutai/weights/linear_weight.h"

#include <ATen/ATen.h>

#include <vector>

#include "kyutai/error.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/weights/dense_product.h"

namespace kyutai {

void LinearWeight::pack(WeightFormat format) {
  const WeightFormatTraits& traits = weight_format_traits(format);
  if (format == WeightFormat::Auto)
    throw ConfigError("the weight format 'auto' must be resolved for a device before loading");
  if (!tensor.is_cpu()) {
    if (traits.cpu_only)
      throw ConfigError(std::string(traits.name) +
                        " weights run on the CPU only; use float32 or bfloat16 on a GPU");
    return;
  }
  tensor = tensor.contiguous();
  const int64_t out = tensor.size(0), in = tensor.size(1);
  if (!traits.quantized && kernels::padded_inputs(format, in) == in &&
      tensor.scalar_type() == (format == WeightFormat::Float32 ? at::kFloat : at::kBFloat16)) {
    // Already in the kernels' layout: they read the tensor itself, which stays for products
    // over many rows (whole-sequence passes), where a BLAS gemm is faster.
    auto keep = std::make_shared<at::Tensor>(tensor);
    const std::shared_ptr<const void> owner(keep, keep.get());
    packed_ = std::make_shared<const kernels::PackedWeight>(
        kernels::PackedWeight::view(format, out, in, tensor.data_ptr(), nullptr, owner));
    return;
  }
  kernels::PackedWeight p;
  if (tensor.scalar_type() == at::kBFloat16) {
    p = kernels::pack_bf16(format, static_cast<const uint16_t*>(tensor.data_ptr()), out, in);
  } else {
    const at::Tensor f = tensor.to(at::kFloat).contiguous();
    p = kernels::pack(format, f.data_ptr<float>(), out, in);
  }
  packed_ = std::make_shared<const kernels::PackedWeight>(std::move(p));
  // The kernels now hold the values. A quantized format drops the loaded tensor (often a view of
  // the checkpoint's mapping), which would only keep memory resident; a float one keeps it for
  // products over many rows.
  if (traits.quantized) tensor = at::Tensor();
}

void LinearWeight::set_packed(std::shared_ptr<const kernels::PackedWeight> packed) {
  packed_ = std::move(packed);
  tensor = at::Tensor();
}

at::Tensor LinearWeight::operator()(const at::Tensor& x) const {
  const int64_t in = x.size(-1), rows = x.numel() / in;
  // Past kExactRows a float weight goes through libtorch's gemm, which reads it once for all rows.
  if (!packed_ || (tensor.defined() && rows > kExactRows)) return dense::linear(x, tensor);
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = packed_->out;
  at::Tensor y = at::empty(shape, xf.options());
  kernels::matmul(*packed_, xf.data_ptr<float>(), rows, in, y.data_ptr<float>(), packed_->out);
  return y.scalar_type() == x.scalar_type() ? y : y.to(x.scalar_type());
}

at::Tensor LinearWeight::dense() const {
  if (tensor.defined()) return tensor;
  const kernels::PackedWeight& p = *packed_;
  at::Tensor w = at::empty({p.out, p.in}, at::kFloat);
  std::vector<double> row(static_cast<size_t>(p.in_padded));
  float* dst = w.data_ptr<float>();
  for (int64_t o = 0; o < p.out; ++o) {
    kernels::dequantize_row(p, o, row.data());
    for (int64_t i = 0; i < p.in; ++i) dst[o * p.in + i] = static_cast<float>(row[i]);
  }
  return w;
}

int64_t LinearWeight::bytes() const {
  if (packed_) return static_cast<int64_t>(packed_->total_bytes());
  return tensor.defined() ? tensor.numel() * tensor.element_size() : 0;
}

}  // namespace kyutai
