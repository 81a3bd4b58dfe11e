// Internal: the Mimi codec (reference moshi/models/compression.py MimiModel, built as
// loaders.get_mimi does). The model is immutable once loaded; each stream keeps its own state.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kyutai/config.h"
#include "kyutai/model/conv.h"
#include "kyutai/io/params.h"
#include "kyutai/model/quantization.h"
#include "kyutai/model/seanet.h"
#include "kyutai/model/transformer.h"

namespace kyutai {

// Intermediate tensors of one encode or decode, for parity tests. [B, C, T] each.
struct MimiTrace {
  at::Tensor seanet;       // encoder: SEANet output; decoder: SEANet input
  at::Tensor transformer;  // transformer output
  at::Tensor latent;       // encoder: latent before quantization; decoder: after upsampling
};

struct MimiEncoderState {
  SeanetState seanet;
  std::optional<TransformerState> transformer;  // created on the first frame
  ConvState downsample;
  int num_codebooks = 0;
};

struct MimiDecoderState {
  SeanetState seanet;
  std::optional<TransformerState> transformer;
  ConvTrState upsample;
};

class MimiModel {
 public:
  explicit MimiModel(const MimiConfig& config);
  MimiModel(const MimiModel&) = delete;
  MimiModel& operator=(const MimiModel&) = delete;

  // Loads weights (reference or fused checkpoint names) onto `device`.
  void load(const std::string& path, const at::Device& device, const LoadProgress& progress = {});
  // Random weights, for benchmarks and tests.
  void init_random(uint64_t seed, const at::Device& device);
  // Writes the weights under their reference names (a file `load` reads back).
  void save(const std::string& path) const;
  const std::vector<ParamSpec>& params() const { return params_; }
  const MimiConfig& config() const { return config_; }
  const at::Device& device() const { return device_; }
  int frame_size() const { return config_.frame_size(); }
  int total_codebooks() const { return config_.quantizer.n_q; }
  int cardinality() const { return config_.quantizer.bins; }

  // Whole signal. Audio [B, 1, T] (right-padded to whole frames) -> codes [B, n, T / frame].
  at::Tensor encode(const at::Tensor& audio, int num_codebooks, MimiTrace* trace = nullptr) const;
  // Codes [B, K, F] -> audio [B, 1, F * frame].
  at::Tensor decode(const at::Tensor& codes, MimiTrace* trace = nullptr) const;
  // Codes [B, K, F] -> quantized latent [B, D, F].
  at::Tensor decode_latent(const at::Tensor& codes) const;
  const SplitResidualVQ& quantizer() const { return quantizer_; }

  // Streaming: exactly one frame per call.
  MimiEncoderState new_encoder_state(int num_codebooks) const;
  // Audio [B, 1, frame_size] -> codes [B, n, 1].
  at::Tensor encode_step(const at::Tensor& frame, MimiEncoderState& state,
                         MimiTrace* trace = nullptr) const;
  // Several streams at once, each with its own state, started whenever (batch 1 each): row i
  // of frames [N, 1, frame_size] is stream i's. Products run over all rows; each stream's codes
  // are what encode_step gives it alone, to float rounding (see MimiEncoder). -> codes [N, n, 1], n
  // the most any state asks for (a stream reads its first num_codebooks).
  at::Tensor encode_step(const at::Tensor& frames,
                         const std::vector<MimiEncoderState*>& states) const;
  MimiDecoderState new_decoder_state() const;
  // Codes [B, K, 1] -> audio [B, 1, frame_size].
  at::Tensor decode_step(const at::Tensor& codes, MimiDecoderState& state,
                         MimiTrace* trace = nullptr) const;

 private:
  // The encoder and decoder transformers, in conv layout: [B, C, T] -> [B, C, T].
  at::Tensor transformer(const StreamingTransformer& t, const at::Tensor& x,
                         std::optional<TransformerState>* state) const;
  at::Tensor transformer(const StreamingTransformer& t, const at::Tensor& x,
                         const std::vector<std::optional<TransformerState>*>& rows) const;
  at::Tensor check_frame(const at::Tensor& frame) const;  // on the device, in float32
  void prepare();  // derived tensors, once the weights are in place
  void check_num_codebooks(int n) const;

  MimiConfig config_;
  at::Device device_ = at::kCPU;
  SeanetEncoder encoder_;
  SeanetDecoder decoder_;
  StreamingTransformer encoder_transformer_, decoder_transformer_;
  SplitResidualVQ quantizer_;
  std::optional<StreamingConv1d> downsample_;
  std::optional<StreamingConvTranspose1d> upsample_;
  std::vector<ParamSpec> params_;
};

}  // namespace kyutai
