#include "kyutai/conv.h"

#include <ATen/ATen.h>

#include "kyutai/error.h"

namespace kyutai {

void StreamingConv1d::declare(const Params& p) {
  p.add("conv.conv.weight", {o_.out, o_.in / o_.groups, o_.kernel}, weight_);
  if (o_.bias) p.add("conv.conv.bias", {o_.out}, bias_);
}

at::Tensor StreamingConv1d::conv(const at::Tensor& x) const {
  return at::conv1d(x, weight_, bias_, at::IntArrayRef{o_.stride}, at::IntArrayRef{0},
                    at::IntArrayRef{o_.dilation}, o_.groups);
}

ConvState StreamingConv1d::init_state(int64_t batch, const at::TensorOptions& options) const {
  return {at::zeros({batch, o_.in, context()}, options), true};
}

at::Tensor StreamingConv1d::forward(const at::Tensor& x) const {
  ConvState fresh = init_state(x.size(0), x.options());
  return step(x, fresh);
}

at::Tensor StreamingConv1d::step(const at::Tensor& x, ConvState& state) const {
  const int64_t steps = x.size(2);
  if (steps == 0 || steps % o_.stride != 0)
    throw InputError("convolution input of " + std::to_string(steps) +
                     " steps is not a positive multiple of its stride " + std::to_string(o_.stride));
  const int64_t ctx = context();
  if (ctx <= 0) return conv(x);
  if (o_.replicate && state.first) {
    if (steps < ctx) throw InputError("first chunk is shorter than the replicated left context");
    state.previous = x.narrow(2, 0, 1).expand({-1, -1, ctx}).contiguous();
  }
  state.first = false;
  at::Tensor full = at::cat({state.previous, x}, 2);
  state.previous = full.narrow(2, full.size(2) - ctx, ctx).contiguous();
  return conv(full);
}

void StreamingConvTranspose1d::declare(const Params& p) {
  p.add("convtr.convtr.weight", {o_.in, o_.out / o_.groups, o_.kernel}, weight_);
  if (o_.bias) p.add("convtr.convtr.bias", {o_.out}, bias_);
}

at::Tensor StreamingConvTranspose1d::convtr(const at::Tensor& x) const {
  return at::conv_transpose1d(x, weight_, bias_, at::IntArrayRef{o_.stride}, at::IntArrayRef{0},
                              at::IntArrayRef{0}, o_.groups);
}

ConvTrState StreamingConvTranspose1d::init_state(int64_t batch,
                                                 const at::TensorOptions& options) const {
  return {at::zeros({batch, o_.out, o_.kernel - o_.stride}, options)};
}

at::Tensor StreamingConvTranspose1d::forward(const at::Tensor& x) const {
  at::Tensor y = convtr(x);
  return y.narrow(2, 0, y.size(2) - (o_.kernel - o_.stride));
}

at::Tensor StreamingConvTranspose1d::step(const at::Tensor& x, ConvTrState& state) const {
  at::Tensor y = convtr(x);
  const int64_t overlap = o_.kernel - o_.stride;
  if (overlap <= 0) return y;
  y.narrow(2, 0, overlap).add_(state.partial);
  at::Tensor tail = y.narrow(2, y.size(2) - overlap, overlap);
  // The bias is added again by the next call's output, so the carried part goes without it.
  state.partial = bias_.defined() ? tail - bias_.view({1, -1, 1}) : tail.clone();
  return y.narrow(2, 0, y.size(2) - overlap);
}

}  // namespace kyutai
