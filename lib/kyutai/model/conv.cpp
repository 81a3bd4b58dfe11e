#include "kyutai/model/conv.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "kyutai/error.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/kernels/thread_pool.h"
#include "kyutai/weights/dense_product.h"

namespace kyutai {

void StreamingConv1d::declare(const Params& p) {
  p.add("conv.conv.weight", {o_.out, o_.in / o_.groups, o_.kernel}, weight_);
  if (o_.bias) p.add("conv.conv.bias", {o_.out}, bias_);
}

void StreamingConv1d::prepare() {
  on_kernels_ = LinearWeight{};
  if (o_.groups != 1 || !weight_.is_cpu() || weight_.scalar_type() != at::kFloat) return;
  on_kernels_.tensor = weight_.contiguous().view({o_.out, -1});
  on_kernels_.pack(WeightFormat::Float32);
}

// Above this many unfolded elements (whole-signal calls on long audio) the column matrix costs
// more memory than the product saves time, so libtorch's own convolution takes over.
constexpr int64_t kMaxColumns = int64_t{1} << 22;

// Another device or type, groups, or a long signal: libtorch's operations.
at::Tensor StreamingConv1d::conv_libtorch(const at::Tensor& x) const {
  const int64_t batch = x.size(0);
  if (o_.groups != 1 || o_.in * o_.kernel * x.size(2) * batch / o_.stride > kMaxColumns)
    return at::conv1d(x, weight_, bias_, at::IntArrayRef{o_.stride}, at::IntArrayRef{0},
                      at::IntArrayRef{o_.dilation}, o_.groups);
  const at::Tensor in = x.contiguous();
  const int64_t length = in.size(2);
  const int64_t steps = (length - (o_.kernel - 1) * o_.dilation - 1) / o_.stride + 1;
  at::Tensor cols = in.as_strided({batch, o_.in, o_.kernel, steps},
                                  {o_.in * length, length, o_.dilation, o_.stride})
                        .permute({1, 2, 0, 3})
                        .reshape({o_.in * o_.kernel, batch * steps});
  at::Tensor y = dense::matmul_wx(weight_.view({o_.out, -1}), cols);
  if (bias_.defined()) y = y + bias_.unsqueeze(1);
  return y.view({o_.out, batch, steps}).permute({1, 0, 2}).contiguous();
}

namespace {

// Elements one claim of the copies below takes at least: a few tens of kilobytes, so that small
// layers stay on the calling thread and large ones (the first layers of several streams, a few
// megabytes each) use every thread instead of one.
constexpr int64_t kCopyChunk = int64_t{1} << 13;

// The input a convolution reads: `head` (the carried context, [B, C, H], H may be 0) followed
// by `x` ([B, C, T]), both contiguous float32, as one signal of H + T steps.
struct Signal {
  const float* head;
  const float* x;
  int64_t batch, channels, head_len, len;
  // dst[t] = the signal (b, c) at first + t * stride, t < count: the part in the head, then the
  // part in x, without a test per element.
  void gather(int64_t b, int64_t c, int64_t first, int64_t stride, int64_t count,
              float* dst) const {
    int64_t t = 0;
    if (first < head_len) {
      const float* from = head + (b * channels + c) * head_len;
      const int64_t in_head = std::min(count, (head_len - first + stride - 1) / stride);
      for (; t < in_head; ++t) dst[t] = from[first + t * stride];
    }
    if (t == count) return;
    const float* from = x + (b * channels + c) * len + (first + t * stride - head_len);
    if (stride == 1) {
      std::copy(from, from + (count - t), dst + t);
      return;
    }
    for (int64_t i = 0; t < count; ++t, i += stride) dst[t] = from[i];
  }
};

// The unfolded columns of every stream side by side: element (c * kernel + k, b * steps + t) is
// the signal at (b, c, t * stride + k * dilation). `rows` lays them out as [B * steps,
// C * kernel] (the kernels' activations), otherwise as [C * kernel, B * steps] (gemm's).
void unfold(const Signal& s, const Conv1dOptions& o, int64_t steps, bool rows, float* out) {
  const int64_t width = s.channels * o.kernel, columns = s.batch * steps;
  if (rows) {
    kernels::parallel_claims(
        columns, std::max<int64_t>(1, kCopyChunk / width), [&](int64_t begin, int64_t end) {
          for (int64_t j = begin; j < end; ++j) {
            const int64_t b = j / steps, t0 = (j % steps) * o.stride;
            for (int64_t c = 0; c < s.channels; ++c)
              s.gather(b, c, t0, o.dilation, o.kernel, out + j * width + c * o.kernel);
          }
        });
    return;
  }
  kernels::parallel_claims(width, std::max<int64_t>(1, kCopyChunk / columns),
                           [&](int64_t begin, int64_t end) {
                             for (int64_t r = begin; r < end; ++r) {
                               const int64_t c = r / o.kernel, k0 = (r % o.kernel) * o.dilation;
                               for (int64_t b = 0; b < s.batch; ++b)
                                 s.gather(b, c, k0, o.stride, steps, out + r * columns + b * steps);
                             }
                           });
}

// out[b, o, t] = y(o, b * steps + t) + bias[o] (no bias: a copy), y of any strides.
void scatter_outputs(const at::Tensor& y, const at::Tensor& bias, int64_t batch, int64_t steps,
                     float* out) {
  const int64_t outs = y.size(0), s0 = y.stride(0), s1 = y.stride(1);
  const float* src = y.data_ptr<float>();
  const float* add = bias.defined() ? bias.data_ptr<float>() : nullptr;
  kernels::parallel_claims(batch * outs, std::max<int64_t>(1, kCopyChunk / steps),
                           [&](int64_t begin, int64_t end) {
                             for (int64_t i = begin; i < end; ++i) {
                               const int64_t b = i / outs, o = i % outs;
                               const float* from = src + o * s0 + b * steps * s1;
                               float* dst = out + i * steps;
                               if (add)
                                 for (int64_t t = 0; t < steps; ++t) dst[t] = from[t * s1] + add[o];
                               else
                                 for (int64_t t = 0; t < steps; ++t) dst[t] = from[t * s1];
                             }
                           });
}

}  // namespace

at::Tensor StreamingConv1d::conv(const at::Tensor& head, const at::Tensor& x) const {
  const int64_t batch = x.size(0);
  const int64_t head_len = head.defined() ? head.size(2) : 0;
  const int64_t length = head_len + x.size(2);
  const int64_t steps = (length - (o_.kernel - 1) * o_.dilation - 1) / o_.stride + 1;
  const bool plain = o_.groups == 1 && x.is_cpu() && x.scalar_type() == at::kFloat &&
                     weight_.scalar_type() == at::kFloat &&
                     (!head.defined() || (head.is_cpu() && head.scalar_type() == at::kFloat)) &&
                     (!bias_.defined() || bias_.scalar_type() == at::kFloat) && batch > 0 &&
                     length >= (o_.kernel - 1) * o_.dilation + 1;  // steps >= 1
  if (!plain || o_.in * o_.kernel * length * batch / o_.stride > kMaxColumns)
    return conv_libtorch(head_len > 0 ? at::cat({head, x}, 2) : x);
  // Unfold each stream's input into columns, side by side, and do one matrix product for all
  // streams: the weights are read once. The unfolding and the outputs' placement are plain
  // copies, on every thread.
  const at::Tensor h = head_len > 0 ? head.contiguous() : at::Tensor();
  const at::Tensor in = x.contiguous();
  const Signal signal{h.defined() ? h.data_ptr<float>() : nullptr,
                      in.data_ptr<float>(),
                      batch,
                      o_.in,
                      head_len,
                      in.size(2)};
  const int64_t columns = batch * steps;
  at::Tensor y;
  if (on_kernels_.shared_packed() && columns <= LinearWeight::kExactRows) {
    // A few columns (the deep layers; several streams' steps): the kernels stream the weight
    // in place, once per 8 columns (gemm copied it whole, one gemv per column read it once per
    // column).
    at::Tensor rows = at::empty({columns, o_.in * o_.kernel}, in.options());
    unfold(signal, o_, steps, true, rows.data_ptr<float>());
    y = on_kernels_(rows).t();
  } else if (on_kernels_.shared_packed() && kernels::current_isa() != kernels::Isa::Scalar) {
    // Many columns (the first layers): the dense kernels, on the kernels' threads (not on a
    // CPU without AVX2, where they would be one libm call per multiply-add). OpenBLAS's
    // gemm ran on threads of its own, which polled each other between its blocks while the
    // kernels' threads polled for work. Each element is the same bits whatever the columns.
    at::Tensor cols = at::empty({o_.in * o_.kernel, columns}, in.options());
    unfold(signal, o_, steps, false, cols.data_ptr<float>());
    y = at::empty({o_.out, columns}, in.options());
    kernels::matmul_dense(on_kernels_.tensor.data_ptr<float>(), o_.out, o_.in * o_.kernel,
                          cols.data_ptr<float>(), columns, y.data_ptr<float>());
  } else {
    at::Tensor cols = at::empty({o_.in * o_.kernel, columns}, in.options());
    unfold(signal, o_, steps, false, cols.data_ptr<float>());
    y = dense::matmul_wx(weight_.view({o_.out, -1}), cols);
  }
  at::Tensor out = at::empty({batch, o_.out, steps}, in.options());
  scatter_outputs(y, bias_, batch, steps, out.data_ptr<float>());
  return out;
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
                     " steps is not a positive multiple of its stride " +
                     std::to_string(o_.stride));
  const int64_t ctx = context();
  if (ctx <= 0) return conv(at::Tensor(), x);
  if (o_.replicate && state.first) {
    if (steps < ctx) throw InputError("first chunk is shorter than the replicated left context");
    state.previous = x.narrow(2, 0, 1).expand({-1, -1, ctx}).contiguous();
  }
  state.first = false;
  at::Tensor y = conv(state.previous, x);
  // The context for the next call: the last ctx steps of the previous context and x, copied (a
  // view could alias the caller's buffer, which it may refill).
  state.previous = steps >= ctx ? x.narrow(2, steps - ctx, ctx).clone(at::MemoryFormat::Contiguous)
                                : at::cat({state.previous.narrow(2, steps, ctx - steps), x}, 2);
  return y;
}

at::Tensor StreamingConv1d::step(const at::Tensor& x, const std::vector<ConvState*>& rows) const {
  if (rows.size() == 1) return step(x, *rows[0]);
  const int64_t ctx = context();
  // Everything is checked before any stream's state changes.
  if (x.size(0) != static_cast<int64_t>(rows.size()))
    throw InputError("a convolution over " + std::to_string(rows.size()) + " streams got " +
                     std::to_string(x.size(0)) + " rows");
  if (x.size(2) == 0 || x.size(2) % o_.stride != 0)
    throw InputError("convolution input of " + std::to_string(x.size(2)) +
                     " steps is not a positive multiple of its stride " +
                     std::to_string(o_.stride));
  const bool any_first =
      std::any_of(rows.begin(), rows.end(), [](ConvState* s) { return s->first; });
  if (o_.replicate && any_first && x.size(2) < ctx)
    throw InputError("first chunk is shorter than the replicated left context");
  if (ctx <= 0) {
    ConvState none;
    return step(x, none);
  }
  std::vector<at::Tensor> previous;
  for (size_t i = 0; i < rows.size(); ++i) {
    ConvState& row = *rows[i];
    if (o_.replicate && row.first)
      row.previous = x.narrow(0, i, 1).narrow(2, 0, 1).expand({-1, -1, ctx});
    row.first = false;
    previous.push_back(row.previous);
  }
  ConvState together{at::cat(previous, 0), false};
  at::Tensor y = step(x, together);
  for (size_t i = 0; i < rows.size(); ++i) rows[i]->previous = together.previous.narrow(0, i, 1);
  return y;
}

void StreamingConvTranspose1d::declare(const Params& p) {
  p.add("convtr.convtr.weight", {o_.in, o_.out / o_.groups, o_.kernel}, weight_);
  if (o_.bias) p.add("convtr.convtr.bias", {o_.out}, bias_);
}

void StreamingConvTranspose1d::prepare() {
  if (o_.groups != 1) return;
  columns_ = weight_.permute({1, 2, 0}).reshape({o_.out * o_.kernel, o_.in}).contiguous();
  weight_ = columns_.view({o_.out, o_.kernel, o_.in}).permute({2, 0, 1});
  on_kernels_ = LinearWeight{};
  if (!columns_.is_cpu() || columns_.scalar_type() != at::kFloat) return;
  on_kernels_.tensor = columns_;
  on_kernels_.pack(WeightFormat::Float32);
}

// A channel-wise transposed convolution (groups = channels, Mimi's upsampler): each channel's
// input step t adds x * w[k] at output t * stride + k. libtorch runs one product per channel
// for it (512 of them a frame, 1-2 ms on one thread); this is a few thousand multiply-adds.
at::Tensor StreamingConvTranspose1d::convtr_channel_wise(const at::Tensor& x) const {
  const int64_t batch = x.size(0), channels = o_.in, steps = x.size(2);
  const at::Tensor in = x.contiguous(), w = weight_.contiguous();
  const int64_t length = (steps - 1) * o_.stride + o_.kernel;
  at::Tensor y = at::zeros({batch, channels, length}, in.options());
  const float* src = in.data_ptr<float>();
  const float* weights = w.data_ptr<float>();
  const float* bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
  float* dst = y.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < channels; ++c) {
      const float* xs = src + (b * channels + c) * steps;
      const float* wc = weights + c * o_.kernel;
      float* out = dst + (b * channels + c) * length;
      for (int64_t t = 0; t < steps; ++t)
        for (int64_t k = 0; k < o_.kernel; ++k) out[t * o_.stride + k] += xs[t] * wc[k];
      if (bias)
        for (int64_t i = 0; i < length; ++i) out[i] += bias[c];
    }
  return y;
}

at::Tensor StreamingConvTranspose1d::convtr(const at::Tensor& x) const {
  if (o_.groups > 1 && o_.groups == o_.in && o_.in == o_.out && x.is_cpu() &&
      x.scalar_type() == at::kFloat && weight_.scalar_type() == at::kFloat &&
      (!bias_.defined() || bias_.scalar_type() == at::kFloat))
    return convtr_channel_wise(x);
  if (!columns_.defined() || o_.kernel % o_.stride != 0)
    return at::conv_transpose1d(x, weight_, bias_, at::IntArrayRef{o_.stride}, at::IntArrayRef{0},
                                at::IntArrayRef{0}, o_.groups);
  // Every input step contributes kernel samples; with kernel = m * stride they are m blocks of
  // stride samples, block j landing j * stride later. One product for all streams:
  // [C_out, m, stride, B, T] columns.
  const int64_t batch = x.size(0), steps = x.size(2), blocks = o_.kernel / o_.stride;
  const int64_t columns = batch * steps;
  at::Tensor product;
  const bool on_kernels =
      on_kernels_.shared_packed() && x.is_cpu() && x.scalar_type() == at::kFloat;
  if (on_kernels && columns <= LinearWeight::kExactRows) {
    // On the kernels, as the convolutions: a few steps stream the weight (once per 8 steps),
    // many take the dense kernels on the kernels' threads (not on a CPU without AVX2, where
    // they would be one libm call per multiply-add).
    product = on_kernels_(x.permute({0, 2, 1}).reshape({columns, o_.in})).t();
  } else if (on_kernels && kernels::current_isa() != kernels::Isa::Scalar) {
    const at::Tensor in = x.permute({1, 0, 2}).reshape({o_.in, columns}).contiguous();
    product = at::empty({o_.out * o_.kernel, columns}, in.options());
    kernels::matmul_dense(columns_.data_ptr<float>(), o_.out * o_.kernel, o_.in,
                          in.data_ptr<float>(), columns, product.data_ptr<float>());
  } else {
    product = dense::matmul_wx(columns_, x.permute({1, 0, 2}).reshape({o_.in, columns}));
  }
  const at::Tensor cols = product.reshape({o_.out, blocks, o_.stride, batch, steps})
                              .permute({1, 3, 0, 4, 2})
                              .reshape({blocks, batch, o_.out, steps * o_.stride});
  at::Tensor y = at::zeros({batch, o_.out, (steps + blocks - 1) * o_.stride}, x.options());
  for (int64_t j = 0; j < blocks; ++j) y.narrow(2, j * o_.stride, steps * o_.stride).add_(cols[j]);
  if (bias_.defined()) y.add_(bias_.view({1, -1, 1}));
  return y;
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
