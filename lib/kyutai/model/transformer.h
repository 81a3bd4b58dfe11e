// Internal: the reference StreamingTransformer (moshi/modules/transformer.py, rope.py, gating.py)
// with its whole-sequence path and its step path over a KV ring buffer.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "kyutai/config.h"
#include "kyutai/weights.h"
#include "kyutai/weights/linear_weight.h"
#include "kyutai/io/params.h"

namespace kyutai {

// One attention layer's streaming memory: a ring of `capacity` keys and values. Step p lives in
// slot p % capacity; a new chunk is written whole before attending, as the reference does.
struct KVCache {
  at::Tensor keys;    // [B, H, capacity, D]
  at::Tensor values;  // [B, H, capacity, D]
  // An int8 cache (kernels/attention.h, KvFormat::Int8): keys and values are int8 and each row
  // has a float32 scale here, [B, H, capacity]; undefined otherwise.
  at::Tensor key_scales, value_scales;
};


struct TransformerState {
  std::vector<KVCache> layers;
  int64_t offset = 0;  // steps processed so far: the position of the next step
};

// The reference's normalisations; `f32` variants compute in float32 whatever the dtype.
class Norm {
 public:
  Norm(NormKind kind, int dim);
  void declare(const Params& p);
  at::Tensor operator()(const at::Tensor& x) const;  // [B, T, C] -> [B, T, C]

 private:
  bool rms_;
  double eps_;
  int dim_;
  at::Tensor weight_, bias_, alpha_;
};

class StreamingTransformer {
 public:
  explicit StreamingTransformer(const TransformerConfig& config);
  void declare(const Params& p);  // "layers.{i}...."

  // Whole sequence starting at position 0: [B, T, C] -> [B, T, C], causal mask limited to the
  // context.
  at::Tensor forward(const at::Tensor& x) const;
  // The next T steps of a stream: [B, T, C] -> [B, T, C].
  at::Tensor step(const at::Tensor& x, TransformerState& state) const;
  // The next T steps of several streams at once, each with its own state (its own KV ring and
  // position): x [N, T, C] -> [N, T, C], where states[i] holds the next b_i rows of x (its
  // batch) and the b_i sum to N. Products run over all N rows; rope, the KV ring and attention
  // run per state. With weights per step, every state must be at the same position.
  at::Tensor step(const at::Tensor& x, const std::vector<TransformerState*>& states) const;
  TransformerState init_state(int64_t batch, const at::TensorOptions& options,
                              KvCacheFormat kv = KvCacheFormat::Model) const;
  const TransformerConfig& config() const { return config_; }

 private:
  struct Layer {
    Layer(NormKind norm, int dim) : norm1(norm, dim), norm2(norm, dim) {}
    Norm norm1, norm2;
    std::vector<LinearWeight> in_projs, out_projs;  // one per weight set
    std::vector<LinearWeight> gate_in, gate_out;    // gating, one per weight set
    LinearWeight linear1, linear2;                  // plain feed-forward (gating "none")
    at::Tensor scale1, scale2;                    // layer scale, when configured
  };
  // What every layer of one call shares: positions, rotations and the attention mask.
  struct Positions {
    int64_t offset = 0;   // position of the first new step
    int64_t keys = 0;     // number of key slots attended to
    at::Tensor cos, sin;  // rope rotations [T, D / 2]
    at::Tensor bias;      // [T, keys], 0 or -inf
  };
  // Rows of one call that share a position and a streaming state (null: whole sequence).
  struct Group {
    int64_t rows = 0;
    Positions pos;
    TransformerState* state = nullptr;
  };
  // Rope frequencies max_period^(-2i/D) [D / 2] in float32 on the device of `like`; undefined
  // without rope. The same for every position, so computed once per call.
  at::Tensor rope_freqs(const at::Tensor& like) const;
  Positions positions(int64_t offset, int64_t steps, bool streaming, const at::Tensor& freqs,
                      const at::Tensor& like) const;
  at::Tensor run(const at::Tensor& x, const std::vector<Group>& groups) const;
  // x [N, T, C] -> [N, T, C]; each group attends with its own rotations, mask and KV ring.
  at::Tensor attention(const Layer& layer, size_t index, const at::Tensor& x,
                       const std::vector<Group>& groups) const;
  // One group's attention: q, k, v [b, H, T, D] -> [b, H, T, D].
  at::Tensor attend(at::Tensor q, at::Tensor k, at::Tensor v, const Positions& pos,
                    KVCache* cache) const;
  at::Tensor feed_forward(const Layer& layer, const at::Tensor& x, int64_t offset) const;
  // Applies weight set schedule(offset + t) to step t of x: [B, T, in] -> [B, T, out].
  at::Tensor per_step(const std::vector<LinearWeight>& weights, const at::Tensor& x,
                      int64_t offset) const;
  // The weight set that position `index` uses (weights per step, with their schedule).
  size_t weight_set(const std::vector<LinearWeight>& weights, int64_t index) const;
  static at::Tensor rope(const at::Tensor& x, const Positions& pos);
  int64_t capacity() const;

  TransformerConfig config_;
  std::vector<Layer> layers_;
};

}  // namespace kyutai
