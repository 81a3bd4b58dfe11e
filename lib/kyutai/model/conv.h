// Internal: causal streaming convolutions (reference moshi/modules/conv.py).
// Whole-signal and step paths agree to float rounding for any chunking in whole strides.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "kyutai/io/params.h"
#include "kyutai/weights/linear_weight.h"

namespace kyutai {

struct Conv1dOptions {
  int in = 0, out = 0, kernel = 1, stride = 1, dilation = 1, groups = 1;
  bool bias = true;
  bool replicate = false;  // left context starts as copies of the first sample, not zeros
};

// The left context a causal convolution carries between calls.
struct ConvState {
  at::Tensor previous;  // [B, C_in, effective_kernel - stride]
  bool first = true;
};

class StreamingConv1d {
 public:
  explicit StreamingConv1d(const Conv1dOptions& options) : o_(options) {}
  void declare(const Params& p);  // "conv.conv.weight", "conv.conv.bias"
  // After loading: a view of the weight for the kernels (float32 on the CPU, no groups).
  void prepare();

  // [B, C_in, T] -> [B, C_out, T / stride]; T must be a multiple of the stride. The whole-signal
  // path is one step from a fresh state, as in the reference.
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor step(const at::Tensor& x, ConvState& state) const;
  // Several streams at once, each with its own state of batch 1: row i of x [N, C_in, T] is
  // stream i's. One product for all; each stream gets what step() gives it alone, to float
  // rounding (its columns share a product with the others').
  at::Tensor step(const at::Tensor& x, const std::vector<ConvState*>& rows) const;
  ConvState init_state(int64_t batch, const at::TensorOptions& options) const;

 private:
  int context() const { return (o_.kernel - 1) * o_.dilation + 1 - o_.stride; }
  // The convolution of `head` (the carried context, or undefined) followed by `x`, as one signal.
  at::Tensor conv(const at::Tensor& head, const at::Tensor& x) const;
  at::Tensor conv_libtorch(const at::Tensor& x) const;
  Conv1dOptions o_;
  at::Tensor weight_, bias_;
  // The weight [C_out, C_in * kernel] on the kernels (prepare()): products of up to 16 columns
  // stream it on the float32 kernels, more take the dense kernels on its tensor.
  LinearWeight on_kernels_;
};

// The overlap a transposed convolution carries into the next call, bias removed.
struct ConvTrState {
  at::Tensor partial;  // [B, C_out, kernel - stride]
};

class StreamingConvTranspose1d {
 public:
  explicit StreamingConvTranspose1d(const Conv1dOptions& options) : o_(options) {}
  void declare(const Params& p);  // "convtr.convtr.weight", "convtr.convtr.bias"
  // Re-lays the loaded weight out for the matrix-product path (once, after loading).
  void prepare();

  // [B, C_in, T] -> [B, C_out, T * stride]; the last kernel - stride samples wait for the next
  // call (streaming) or are dropped (whole signal).
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor step(const at::Tensor& x, ConvTrState& state) const;
  ConvTrState init_state(int64_t batch, const at::TensorOptions& options) const;

 private:
  at::Tensor convtr(const at::Tensor& x) const;
  at::Tensor convtr_channel_wise(const at::Tensor& x) const;
  Conv1dOptions o_;
  at::Tensor weight_, bias_;
  at::Tensor columns_;  // [C_out * kernel, C_in], the weight as one matrix; weight_ views it
  // columns_ on the kernels (float32 on the CPU): up to 16 steps on the float32 kernels, more on
  // the dense kernels, which read its tensor.
  LinearWeight on_kernels_;
};

}  // namespace kyutai
