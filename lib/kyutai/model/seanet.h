// Internal: SEANet encoder and decoder (reference moshi/modules/seanet.py), causal and streaming.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "kyutai/config.h"
#include "kyutai/model/conv.h"

namespace kyutai {

// Filled on the first step, one entry per convolution in the order the network runs them;
// clearing it resets the stream.
struct SeanetState {
  std::vector<ConvState> convs;
  std::vector<ConvTrState> convtrs;
};

// Residual block: x + conv1x1(elu(conv_k(elu(x)))), with a compressed hidden width.
struct SeanetResBlock {
  StreamingConv1d conv1, conv2;
  std::vector<StreamingConv1d> shortcut;  // empty with true_skip
  void prepare();
};

class SeanetEncoder {
 public:
  explicit SeanetEncoder(const SeanetConfig& config);
  void declare(const Params& p);  // "model.{i}...."
  void prepare();                 // after loading
  // Audio [B, 1, T] -> latent [B, dimension, T / hop].
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor step(const at::Tensor& x, SeanetState& state) const;
  // Several streams at once: row i of x is stream i's, with its own state (StreamingConv1d's
  // rows step).
  at::Tensor step(const at::Tensor& x, const std::vector<SeanetState*>& rows) const;

 private:
  template <class Conv>
  at::Tensor run(at::Tensor x, Conv& conv) const;
  struct Stage {
    std::vector<SeanetResBlock> blocks;
    StreamingConv1d down;
  };
  SeanetConfig config_;
  StreamingConv1d first_, last_;
  std::vector<Stage> stages_;
};

class SeanetDecoder {
 public:
  explicit SeanetDecoder(const SeanetConfig& config);
  void declare(const Params& p);
  void prepare();  // after loading
  // Latent [B, dimension, T] -> audio [B, 1, T * hop].
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor step(const at::Tensor& x, SeanetState& state) const;

 private:
  template <class Conv, class ConvTr>
  at::Tensor run(at::Tensor x, Conv& conv, ConvTr& convtr) const;
  struct Stage {
    StreamingConvTranspose1d up;
    std::vector<SeanetResBlock> blocks;
  };
  SeanetConfig config_;
  StreamingConv1d first_, last_;
  std::vector<Stage> stages_;
};

}  // namespace kyutai
