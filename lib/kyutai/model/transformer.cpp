#include "kyutai/model/transformer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kyutai/error.h"
#include "kyutai/kernels/attention.h"
#include "kyutai/kernels/huge_pages.h"
#include "kyutai/model/ops.h"

namespace kyutai {

namespace {

// Sinusoidal embedding of positions offset..offset+T-1: [T, C] (reference create_sin_embedding).
at::Tensor sin_embedding(int64_t offset, int64_t steps, int64_t dim, double max_period,
                         const at::TensorOptions& options) {
  const int64_t half = dim / 2;
  at::Tensor positions = at::arange(offset, offset + steps, options).view({-1, 1});
  at::Tensor adim = at::arange(half, options).view({1, -1});
  at::Tensor base = at::full({}, max_period, options);
  at::Tensor phase = positions / at::pow(base, adim / static_cast<double>(half - 1));
  return at::cat({at::cos(phase), at::sin(phase)}, -1);
}

// Attention bias for queries at positions q0..q0+T-1 over keys at `key_pos` (-1 = empty slot):
// 0 where the reference mask allows (key exists, not in the future, within the context), -inf
// elsewhere. A context of 0 is unbounded. [T, N] float.
at::Tensor attention_bias(int64_t q0, int64_t steps, const std::vector<int64_t>& key_pos,
                          int64_t context) {
  const int64_t n = static_cast<int64_t>(key_pos.size());
  at::Tensor bias = at::empty({steps, n}, at::kFloat);
  float* out = bias.data_ptr<float>();
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < steps; ++t) {
    for (int64_t j = 0; j < n; ++j) {
      const int64_t delta = q0 + t - key_pos[j];
      const bool ok = key_pos[j] >= 0 && delta >= 0 && (context == 0 || delta < context);
      out[t * n + j] = ok ? 0.f : neg_inf;
    }
  }
  return bias;
}

// Positions held by the first min(written, capacity) slots of a ring that has received
// `written` steps in all: the only slots a query can attend to.
std::vector<int64_t> ring_positions(int64_t written, int64_t capacity) {
  const int64_t last = written - 1;
  std::vector<int64_t> positions(static_cast<size_t>(std::min(written, capacity)));
  for (int64_t j = 0; j < static_cast<int64_t>(positions.size()); ++j) {
    const int64_t delta = j - last % capacity;
    positions[j] = delta <= 0 ? last + delta : last + delta - capacity;
  }
  return positions;
}

// Writes steps offset..offset+T-1 ([B, H, T, D]) into their ring slots.
void ring_write(at::Tensor& ring, const at::Tensor& x, int64_t offset) {
  const int64_t capacity = ring.size(2), steps = x.size(2);
  const int64_t start = offset % capacity;
  const int64_t first = std::min(steps, capacity - start);
  ring.narrow(2, start, first).copy_(x.narrow(2, 0, first));
  if (first < steps) ring.narrow(2, 0, steps - first).copy_(x.narrow(2, first, steps - first));
}

// The same into an int8 ring and its scales [B, H, capacity], each row quantized on its own.
void ring_write_int8(at::Tensor& ring, at::Tensor& scales, const at::Tensor& x, int64_t offset) {
  // The quantizer reads float32 rows: a no-op for a float32 model's contiguous keys, one small
  // conversion ([B, H, T, D]) for a bfloat16 model's.
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  const int64_t batch = x.size(0), heads = x.size(1), steps = x.size(2), dim = x.size(3);
  const int64_t capacity = ring.size(2);
  auto* q = ring.data_ptr<int8_t>();
  float* s = scales.data_ptr<float>();
  const float* src = xf.data_ptr<float>();
  for (int64_t bh = 0; bh < batch * heads; ++bh)
    for (int64_t t = 0; t < steps;) {  // each run of contiguous ring slots in one call
      const int64_t slot = (offset + t) % capacity;
      const int64_t run = std::min(steps - t, capacity - slot);
      kernels::quantize_kv_rows(src + (bh * steps + t) * dim, run, dim,
                                q + (bh * capacity + slot) * dim, s + bh * capacity + slot);
      t += run;
    }
}

void cache_write(KVCache& cache, const at::Tensor& k, const at::Tensor& v, int64_t offset) {
  if (cache.key_scales.defined()) {
    ring_write_int8(cache.keys, cache.key_scales, k, offset);
    ring_write_int8(cache.values, cache.value_scales, v, offset);
    return;
  }
  ring_write(cache.keys, k, offset);
  ring_write(cache.values, v, offset);
}

// The first `keys` slots of a ring in `dtype` (an int8 ring dequantized).
at::Tensor cache_read(const at::Tensor& ring, const at::Tensor& scales, int64_t keys,
                      at::ScalarType dtype) {
  if (!scales.defined()) return ring.narrow(2, 0, keys);
  return (ring.narrow(2, 0, keys).to(at::kFloat) * scales.narrow(2, 0, keys).unsqueeze(-1))
      .to(dtype);
}

// One streaming step attends to every slot written so far (the ring never holds a step outside
// the context), so the kernel can read the cache in place, without a mask.
bool uses_step_kernel(const KVCache& cache) {
  const at::ScalarType t = cache.keys.scalar_type();
  return cache.keys.is_cpu() && (t == at::kFloat || t == at::kBFloat16 || t == at::kChar) &&
         cache.keys.is_contiguous() && cache.values.is_contiguous();
}

kernels::KvFormat kv_format(const KVCache& cache) {
  switch (cache.keys.scalar_type()) {
    case at::kFloat: return kernels::KvFormat::Float32;
    case at::kChar: return kernels::KvFormat::Int8;
    default: return kernels::KvFormat::BFloat16;
  }
}

const float* scales_of(const at::Tensor& scales, int64_t b) {
  return scales.defined() ? scales.data_ptr<float>() + b * scales.size(1) * scales.size(2)
                          : nullptr;
}

// q [B, H, 1, D] against the first `keys` slots of each row's cache -> [B, H, 1, D].
at::Tensor attend_cached(const at::Tensor& q, const KVCache& cache, int64_t keys) {
  const int64_t batch = q.size(0), heads = q.size(1), dim = q.size(3);
  const int64_t capacity = cache.keys.size(2);
  const at::Tensor qf = q.to(at::kFloat).contiguous();
  at::Tensor out = at::empty({batch, heads, 1, dim}, qf.options());
  const kernels::KvFormat format = kv_format(cache);
  const int64_t row = heads * capacity * dim * cache.keys.element_size();
  for (int64_t b = 0; b < batch; ++b)
    kernels::attend_step(qf.data_ptr<float>() + b * heads * dim,
                         static_cast<const char*>(cache.keys.data_ptr()) + b * row,
                         static_cast<const char*>(cache.values.data_ptr()) + b * row, format, heads,
                         capacity, keys, dim, static_cast<float>(1.0 / std::sqrt(double(dim))),
                         out.data_ptr<float>() + b * heads * dim, scales_of(cache.key_scales, b),
                         scales_of(cache.value_scales, b));
  return out.to(q.scalar_type());
}

}  // namespace

Norm::Norm(NormKind kind, int dim)
    : rms_(kind == NormKind::rms_norm || kind == NormKind::rms_norm_f32),
      eps_(kind == NormKind::layer_norm || kind == NormKind::rms_norm ? 1e-5 : 1e-8),
      dim_(dim) {}

void Norm::declare(const Params& p) {
  if (rms_) {
    p.add("alpha", {1, 1, dim_}, alpha_);
  } else {
    p.add("weight", {dim_}, weight_);
    p.add("bias", {dim_}, bias_);
  }
}

at::Tensor Norm::operator()(const at::Tensor& x) const {
  // Both variants compute in float32 when the model runs in a lower precision: the reference
  // does so for the _f32 kinds, and it is harmless for float32 models.
  const at::Tensor xf = x.to(at::kFloat);
  at::Tensor y;
  if (rms_) {
    at::Tensor var = at::mean(xf * xf, {2}, /*keepdim=*/true) + eps_;
    y = xf * (alpha_.to(at::kFloat) * at::rsqrt(var));
  } else {
    y = at::layer_norm(xf, {dim_}, weight_.to(at::kFloat), bias_.to(at::kFloat), eps_);
  }
  return y.to(x.scalar_type());
}

StreamingTransformer::StreamingTransformer(const TransformerConfig& config) : config_(config) {
  for (int i = 0; i < config.num_layers; ++i) layers_.emplace_back(config.norm, config.d_model);
}

void StreamingTransformer::declare(const Params& p) {
  const int64_t dim = config_.d_model;
  const int sets = config_.num_weight_sets();
  int64_t hidden = 0;
  if (config_.gating)
    hidden = config_.dim_feedforward == 4 * dim ? 21 * dim / 8 : 2 * config_.dim_feedforward / 3;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& layer = layers_[i];
    const Params lp = p.sub("layers").sub(i);
    layer.in_projs.resize(sets);
    layer.out_projs.resize(sets);
    // The reference registers out_projs before in_projs; the manifest keeps that order.
    for (int s = 0; s < sets; ++s)
      lp.sub("self_attn").sub("out_projs").sub(s).add("weight", {dim, dim}, layer.out_projs[s]);
    for (int s = 0; s < sets; ++s)
      lp.sub("self_attn").sub("in_projs").sub(s).add("weight", {3 * dim, dim}, layer.in_projs[s]);
    layer.norm1.declare(lp.sub("norm1"));
    layer.norm2.declare(lp.sub("norm2"));
    if (!config_.gating) {
      lp.add("linear1.weight", {config_.dim_feedforward, dim}, layer.linear1);
      lp.add("linear2.weight", {dim, config_.dim_feedforward}, layer.linear2);
    } else {
      layer.gate_in.resize(sets);
      layer.gate_out.resize(sets);
      for (int s = 0; s < sets; ++s) {
        const Params g = config_.weights_per_step ? lp.sub("gating").sub(s) : lp.sub("gating");
        g.add("linear_in.weight", {2 * hidden, dim}, layer.gate_in[s]);
        g.add("linear_out.weight", {dim, hidden}, layer.gate_out[s]);
      }
    }
    if (config_.layer_scale) {
      lp.add("layer_scale_1.scale", {dim}, layer.scale1);
      lp.add("layer_scale_2.scale", {dim}, layer.scale2);
    }
  }
}

int64_t StreamingTransformer::capacity() const {
  if (config_.context) return *config_.context;
  if (config_.weights_per_step) return config_.weights_per_step;
  throw ConfigError("a streaming transformer needs a context to size its KV cache");
}

TransformerState StreamingTransformer::init_state(int64_t batch, const at::TensorOptions& options,
                                                  KvCacheFormat kv) const {
  TransformerState state;
  const int64_t cap = capacity();
  const bool int8 = kv == KvCacheFormat::Int8;
  const at::TensorOptions values = int8 ? options.dtype(at::kChar) : options;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::vector<int64_t> shape = {batch, config_.num_heads, cap, config_.head_dim()};
    // Unfilled: a slot is read only once written, and a long context costs no memory until used.
    KVCache cache{at::empty(shape, values), at::empty(shape, values), {}, {}};
    // A long context's cache is read at every step, as the weights are.
    for (const auto* t : {&cache.keys, &cache.values})
      if (t->is_cpu()) kernels::advise_huge_pages(t->data_ptr(), t->nbytes());
    if (int8) {
      const auto scales = options.dtype(at::kFloat);
      cache.key_scales = at::empty({batch, config_.num_heads, cap}, scales);
      cache.value_scales = at::empty({batch, config_.num_heads, cap}, scales);
    }
    state.layers.push_back(std::move(cache));
  }
  return state;
}

at::Tensor StreamingTransformer::forward(const at::Tensor& x) const {
  Group all;
  all.rows = x.size(0);
  all.pos = positions(0, x.size(1), false, rope_freqs(x), x);
  return run(x, {all});
}

at::Tensor StreamingTransformer::step(const at::Tensor& x, TransformerState& state) const {
  return step(x, std::vector<TransformerState*>{&state});
}

at::Tensor StreamingTransformer::step(const at::Tensor& x,
                                      const std::vector<TransformerState*>& states) const {
  if (x.size(1) > capacity())
    throw InputError("a streaming transformer call carries " + std::to_string(x.size(1)) +
                     " steps, more than its KV cache holds (" + std::to_string(capacity()) + ")");
  const at::Tensor freqs = rope_freqs(x);
  std::vector<Group> groups;
  int64_t rows = 0;
  for (TransformerState* state : states) {
    Group g;
    g.rows = state->layers.empty() ? 1 : state->layers[0].keys.size(0);
    // Positions depend on the offset alone: groups at the same step (all of them, in the
    // depformer) share one set of rotations and mask.
    const auto same = std::find_if(groups.begin(), groups.end(), [&](const Group& other) {
      return other.pos.offset == state->offset;
    });
    g.pos = same != groups.end() ? same->pos : positions(state->offset, x.size(1), true, freqs, x);
    g.state = state;
    if (config_.weights_per_step && state->offset != states[0]->offset)
      throw InputError("streams batched through per-step weights must be at the same step");
    rows += g.rows;
    groups.push_back(std::move(g));
  }
  if (rows != x.size(0))
    throw InputError("a batched transformer step has " + std::to_string(x.size(0)) +
                     " rows for states holding " + std::to_string(rows));
  at::Tensor y = run(x, groups);
  for (TransformerState* state : states) state->offset += x.size(1);
  return y;
}

at::Tensor StreamingTransformer::rope_freqs(const at::Tensor& like) const {
  const PositionalEmbedding pe = config_.positional_embedding;
  if (pe != PositionalEmbedding::rope && pe != PositionalEmbedding::sin_rope) return {};
  // In float32, exactly as the reference computes them.
  const int64_t dim = config_.head_dim();
  return at::exp(at::arange(dim / 2, like.options().dtype(at::kFloat)) *
                 static_cast<float>(-std::log(config_.max_period) * 2 / dim));
}

StreamingTransformer::Positions StreamingTransformer::positions(int64_t offset, int64_t steps,
                                                                bool streaming,
                                                                const at::Tensor& freqs,
                                                                const at::Tensor& like) const {
  Positions pos;
  pos.offset = offset;
  std::vector<int64_t> key_pos;
  if (streaming) {
    key_pos = ring_positions(offset + steps, capacity());
  } else {
    for (int64_t t = 0; t < steps; ++t) key_pos.push_back(offset + t);
  }
  pos.keys = static_cast<int64_t>(key_pos.size());
  // One streaming step sees only written slots no older than the ring (= the context): its
  // bias would be all zeros, so it has none (attend treats an undefined bias as none).
  if (config_.causal && !(streaming && steps == 1))
    pos.bias = attention_bias(offset, steps, key_pos, config_.context.value_or(0))
                   .to(like.options().dtype(at::kFloat));
  if (freqs.defined()) {
    // Angles t * max_period^(-2i/D).
    at::Tensor ts = at::arange(steps, freqs.options()) + static_cast<float>(offset);
    at::Tensor angles = ts.view({-1, 1}) * freqs.view({1, -1});
    pos.cos = at::cos(angles);
    pos.sin = at::sin(angles);
  }
  return pos;
}

at::Tensor StreamingTransformer::run(const at::Tensor& input,
                                     const std::vector<Group>& groups) const {
  at::Tensor x = input;
  const PositionalEmbedding pe = config_.positional_embedding;
  if (pe == PositionalEmbedding::sin || pe == PositionalEmbedding::sin_rope) {
    std::vector<at::Tensor> parts;
    int64_t row = 0;
    for (const Group& g : groups) {
      parts.push_back(x.narrow(0, row, g.rows) + sin_embedding(g.pos.offset, x.size(1), x.size(2),
                                                               config_.max_period, x.options()));
      row += g.rows;
    }
    x = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
  }
  // Per-step weights are chosen by position, the same for every group (step() checks).
  const int64_t offset = groups[0].pos.offset;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    at::Tensor update = attention(layer, i, layer.norm1(x), groups);
    x = x + (config_.layer_scale ? layer.scale1 * update : update);
    update = feed_forward(layer, layer.norm2(x), offset);
    x = x + (config_.layer_scale ? layer.scale2 * update : update);
  }
  return x;
}

size_t StreamingTransformer::weight_set(const std::vector<LinearWeight>& weights,
                                        int64_t index) const {
  if (weights.size() == 1) return 0;
  if (index >= config_.weights_per_step)
    throw InputError("step " + std::to_string(index) + " has no weights (weights_per_step = " +
                     std::to_string(config_.weights_per_step) + ")");
  const auto& schedule = config_.weights_per_step_schedule;
  return static_cast<size_t>(schedule.empty() ? index : schedule[static_cast<size_t>(index)]);
}

at::Tensor StreamingTransformer::per_step(const std::vector<LinearWeight>& weights,
                                          const at::Tensor& x, int64_t offset) const {
  if (weights.size() == 1) return weights[0](x);
  std::vector<at::Tensor> outs;
  for (int64_t t = 0; t < x.size(1); ++t)
    outs.push_back(weights[weight_set(weights, offset + t)](x.narrow(1, t, 1)));
  return outs.size() == 1 ? outs[0] : at::cat(outs, 1);  // a streaming step: no copy
}

at::Tensor StreamingTransformer::rope(const at::Tensor& x, const Positions& pos) {
  // x: [B, H, T, D] with interleaved (real, imaginary) pairs.
  const int64_t steps = x.size(2), dim = x.size(3);
  at::Tensor pairs = x.reshape({x.size(0), x.size(1), steps, dim / 2, 2});
  at::Tensor re = pairs.select(-1, 0).to(at::kFloat), im = pairs.select(-1, 1).to(at::kFloat);
  at::Tensor out = at::stack({re * pos.cos - im * pos.sin, re * pos.sin + im * pos.cos}, -1);
  return out.view(x.sizes()).to(x.scalar_type());
}

at::Tensor StreamingTransformer::attention(const Layer& layer, size_t index, const at::Tensor& x,
                                           const std::vector<Group>& groups) const {
  const int64_t batch = x.size(0), steps = x.size(1);
  const int64_t heads = config_.num_heads, head_dim = config_.head_dim();
  const int64_t offset = groups[0].pos.offset;
  at::Tensor qkv = per_step(layer.in_projs, x, offset)
                       .view({batch, steps, 3, heads, head_dim})
                       .permute({2, 0, 3, 1, 4});  // [3, B, H, T, D]
  std::vector<at::Tensor> outs;
  int64_t row = 0;
  for (const Group& g : groups) {
    KVCache* cache = g.state ? &g.state->layers[index] : nullptr;
    outs.push_back(attend(qkv[0].narrow(0, row, g.rows), qkv[1].narrow(0, row, g.rows),
                          qkv[2].narrow(0, row, g.rows), g.pos, cache));
    row += g.rows;
  }
  const at::Tensor out = outs.size() == 1 ? outs[0] : at::cat(outs, 0);
  return per_step(layer.out_projs, out.permute({0, 2, 1, 3}).reshape({batch, steps, -1}), offset);
}

at::Tensor StreamingTransformer::attend(at::Tensor q, at::Tensor k, at::Tensor v,
                                        const Positions& pos, KVCache* cache) const {
  if (pos.cos.defined()) {
    q = rope(q, pos);
    k = rope(k, pos);
  }
  if (cache) {
    cache_write(*cache, k, v, pos.offset);
    if (q.size(2) == 1 && uses_step_kernel(*cache)) return attend_cached(q, *cache, pos.keys);
    k = cache_read(cache->keys, cache->key_scales, pos.keys, q.scalar_type());
    v = cache_read(cache->values, cache->value_scales, pos.keys, q.scalar_type());
  }
  const double scale = 1.0 / std::sqrt(double(config_.head_dim()));
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale;
  if (pos.bias.defined()) scores = scores + pos.bias.to(scores.scalar_type());
  return at::matmul(at::softmax(scores, -1), v);
}

at::Tensor StreamingTransformer::feed_forward(const Layer& layer, const at::Tensor& x,
                                              int64_t offset) const {
  if (!config_.gating)
    return layer.linear2(ops::activation(layer.linear1(x), Activation::gelu));
  auto gated = [&](const at::Tensor& xs, size_t set) {
    at::Tensor h = layer.gate_in[set](xs);
    const int64_t hidden = h.size(-1) / 2;
    h = ops::activation(h.narrow(-1, 0, hidden), *config_.gating) * h.narrow(-1, hidden, hidden);
    return layer.gate_out[set](h);
  };
  if (layer.gate_in.size() == 1) return gated(x, 0);
  std::vector<at::Tensor> outs;
  for (int64_t t = 0; t < x.size(1); ++t)
    outs.push_back(gated(x.narrow(1, t, 1), weight_set(layer.gate_in, offset + t)));
  return outs.size() == 1 ? outs[0] : at::cat(outs, 1);
}

}  // namespace kyutai
