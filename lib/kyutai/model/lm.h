// Internal: the Moshi language model (reference moshi/models/lm.py LMModel): a temporal
// transformer over text and audio token streams, and a depformer that predicts the audio
// codebooks of one step one after the other. Immutable once loaded; generation state lives in
// lm_generate.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "kyutai/config.h"
#include "kyutai/weights/linear_weight.h"
#include "kyutai/io/params.h"
#include "kyutai/model/transformer.h"
#include "kyutai/weights/weight_cache.h"

namespace kyutai {

// Token embedding (reference ScaledEmbedding): token -1 embeds to zeros; with a low rank, a
// narrow table followed by a projection, a product weight like any other (so each row of a
// batched step gets its own result, up to LinearWeight::kExactRows rows).
class Embedding {
 public:
  Embedding(int64_t count, int64_t dim, int64_t low_rank = 0)
      : count_(count), dim_(dim), low_rank_(low_rank) {}
  void declare(const Params& p);  // "weight" and "low_rank.weight"
  // Tokens [...] int64 -> [..., dim].
  at::Tensor operator()(const at::Tensor& tokens) const;

 private:
  int64_t count_, dim_, low_rank_;
  at::Tensor weight_;
  LinearWeight projection_;  // [dim, low_rank], with a low rank only
};

// A linear layer with optional bias (text head, audio heads).
struct Linear {
  LinearWeight weight;
  at::Tensor bias;
  void declare(const Params& p, int64_t out, int64_t in, bool with_bias);
  at::Tensor operator()(const at::Tensor& x) const;
};

// Non-streaming outputs, aligned with the input codes (reference LMOutput).
struct LmOutput {
  at::Tensor logits;       // [B, dep_q, T, card], NaN where masked
  at::Tensor mask;         // [B, dep_q, T]
  at::Tensor text_logits;  // [B, 1, T, text_card], NaN where masked
  at::Tensor text_mask;    // [B, 1, T]
};

class LmModel {
 public:
  // `dtype` is the dtype the weights are kept and run in (float32 or bfloat16).
  explicit LmModel(const LmConfig& config, at::ScalarType dtype = at::kFloat);
  // Product weights in `weights`. Activations, norms and embeddings run in float32 with float32
  // weights, and in bfloat16 (as the reference runs Kyutai's bfloat16 release) otherwise.
  LmModel(const LmConfig& config, WeightFormat weights);
  LmModel(const LmModel&) = delete;
  LmModel& operator=(const LmModel&) = delete;

  // Quantized formats go through the weights cache described by `cache` (null: no cache).
  void load(const std::string& path, const at::Device& device,
            const WeightCacheOptions* cache = nullptr, const LoadProgress& progress = {});
  void init_random(uint64_t seed, const at::Device& device,
                   RandomDraw draw = RandomDraw::Normal);
  void save(const std::string& path) const;
  const std::vector<ParamSpec>& params() const { return params_; }
  const LmConfig& config() const { return config_; }
  at::ScalarType dtype() const { return dtype_; }
  WeightFormat weight_format() const { return weights_; }
  // Bytes of weights one generation step reads: every product weight (the depformer's weight
  // sets once each) and, per token, one row of each embedding table.
  int64_t step_weight_bytes() const;
  const at::Device& device() const { return device_; }

  // Training-style forward over whole sequences (reference LMModel.forward): codes [B, K, T].
  LmOutput forward(const at::Tensor& codes) const;

  // One step of the temporal transformer. Tokens [B, K] (text, then the n_q audio streams) ->
  // transformer output after out_norm [B, 1, dim]; text logits [B, text_card] in float32.
  at::Tensor text_step(const at::Tensor& tokens, TransformerState& state,
                       at::Tensor* text_logits) const;
  // The same for N conversations at once, row i of tokens [N, K] with states[i] (batch 1 each):
  // products read each weight once for all rows, attention runs per conversation. Each row's
  // result is the one it would get alone, bit for bit, up to LinearWeight::kExactRows rows on
  // the CPU.
  at::Tensor text_step(const at::Tensor& tokens, const std::vector<TransformerState*>& states,
                       at::Tensor* text_logits) const;
  TransformerState new_text_state(int64_t batch, KvCacheFormat kv = KvCacheFormat::Model) const;
  // Depformer codebook `cb` of one step: the previous token [B] (the text token for cb 0) and
  // the temporal output [B, 1, dim] -> audio logits [B, card] in float32. `state` starts each
  // step at offset 0 (new, or reused with its offset set back to 0) and sees codebooks
  // 0..dep_q-1 in order.
  at::Tensor depformer_step(int cb, const at::Tensor& previous, const at::Tensor& transformer_out,
                            TransformerState& state) const;
  // The same for N conversations, one state each (see the batched text_step).
  at::Tensor depformer_step(int cb, const at::Tensor& previous, const at::Tensor& transformer_out,
                            const std::vector<TransformerState*>& states) const;
  TransformerState new_depformer_state(int64_t batch) const;  // empty without a depformer
  // The extra heads' probabilities (reference LMGen.step_with_extra_heads: the softmax of each
  // head's linear over the temporal output, computed here in float32): transformer output
  // [B, 1, dim] -> [B, extra_heads_num_heads, extra_heads_dim] float32, on the model's device.
  at::Tensor extra_heads(const at::Tensor& transformer_out) const;

 private:
  // Sum of the text and audio embeddings of tokens [B, K, T] -> [B, T, dim].
  at::Tensor embed(const at::Tensor& tokens) const;
  // transformer output [B, T, dim] -> (normed output, text logits [B, T, text_card]).
  at::Tensor head(const at::Tensor& out, at::Tensor* text_logits) const;
  // Input of depformer codebook cb: [B, T, dim] temporal output and [B, T] tokens.
  at::Tensor depformer_input(int cb, const at::Tensor& transformer_out,
                             const at::Tensor& tokens) const;
  void check_tokens(const at::Tensor& tokens) const;
  // Audio logits of forward(): normed temporal output [B, T, dim] and the tokens each step
  // predicts [B, K, T] -> [B, dep_q, T, card] float32, before undelaying.
  at::Tensor depformer_logits(const at::Tensor& out, const at::Tensor& targets) const;

  LmConfig config_;
  at::ScalarType dtype_;
  WeightFormat weights_;
  at::Device device_ = at::kCPU;
  std::vector<Embedding> emb_;
  Embedding text_emb_;
  StreamingTransformer transformer_;
  Norm out_norm_;
  Linear text_linear_;
  std::vector<Linear> depformer_in_;
  std::vector<Embedding> depformer_emb_;
  Embedding depformer_text_emb_;
  StreamingTransformer depformer_;
  std::vector<Linear> linears_, extra_heads_;
  std::vector<ParamSpec> params_;
};

}  // namespace kyutai
