#include "kyutai/model/lm.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>

#include "kyutai/error.h"
#include "kyutai/safetensors.h"

namespace kyutai {

namespace {

// Shifts each stream k of [B, K, T] right by delays[k], filling with initial[k]
// (reference _delay_sequence).
at::Tensor delay(const at::Tensor& codes, const std::vector<int>& delays,
                 const std::vector<int64_t>& initial) {
  std::vector<at::Tensor> rows;
  const int64_t steps = codes.size(2);
  for (size_t k = 0; k < delays.size(); ++k) {
    const int64_t d = std::min<int64_t>(delays[k], steps);
    at::Tensor row = codes.select(1, static_cast<int64_t>(k));
    at::Tensor pad = at::full({codes.size(0), d}, initial[k], codes.options());
    rows.push_back(at::cat({pad, row.narrow(1, 0, steps - d)}, 1));
  }
  return at::stack(rows, 1);
}

// Shifts stream k of [B, K, T, V] left by delays[k]; the last delays[k] steps become NaN and
// masked (reference _undelay_sequence). Returns the logits and writes the mask [B, K, T].
at::Tensor undelay(const at::Tensor& logits, const std::vector<int>& delays, at::Tensor* mask) {
  const int64_t steps = logits.size(2);
  std::vector<at::Tensor> rows, masks;
  for (size_t k = 0; k < delays.size(); ++k) {
    const int64_t d = std::min<int64_t>(delays[k], steps);
    at::Tensor row = logits.select(1, static_cast<int64_t>(k));
    at::Tensor tail = at::full({row.size(0), d, row.size(2)},
                               std::numeric_limits<float>::quiet_NaN(), row.options());
    rows.push_back(at::cat({row.narrow(1, d, steps - d), tail}, 1));
    at::Tensor m = at::ones({row.size(0), steps}, row.options().dtype(at::kBool));
    if (d > 0) m.narrow(1, steps - d, d).fill_(false);
    masks.push_back(m);
  }
  *mask = at::stack(masks, 1);
  return at::stack(rows, 1);
}

// A model is built in a format, never in the choice Auto (Moshi::load resolves it for a device).
WeightFormat resolved(WeightFormat format) {
  if (format == WeightFormat::Auto)
    throw ConfigError("the weight format 'auto' must be resolved for a device first");
  return format;
}

}  // namespace

void Embedding::declare(const Params& p) {
  p.add("weight", {count_, low_rank_ ? low_rank_ : dim_}, weight_);
  if (low_rank_) p.add("low_rank.weight", {dim_, low_rank_}, projection_);
}

at::Tensor Embedding::operator()(const at::Tensor& tokens) const {
  const at::Tensor y =
      at::embedding(weight_, tokens.clamp_min(0)).masked_fill((tokens == -1).unsqueeze(-1), 0);
  return low_rank_ ? projection_(y) : y;
}

void Linear::declare(const Params& p, int64_t out, int64_t in, bool with_bias) {
  p.add("weight", {out, in}, weight);
  if (with_bias) p.add("bias", {out}, bias);
}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  at::Tensor y = weight(x);
  return bias.defined() ? y + bias : y;
}

LmModel::LmModel(const LmConfig& config, at::ScalarType dtype)
    : LmModel(config, dtype == at::kBFloat16 ? WeightFormat::BFloat16 : WeightFormat::Float32) {
  if (dtype != at::kFloat && dtype != at::kBFloat16)
    throw ConfigError("the LM runs in float32 or bfloat16");
}

LmModel::LmModel(const LmConfig& config, WeightFormat weights)
    : config_(config),
      dtype_(weights == WeightFormat::Float32 ? at::kFloat : at::kBFloat16),
      weights_(resolved(weights)),
      text_emb_(config.text_card + 1, config.dim),
      transformer_(config.transformer),
      out_norm_(config.transformer.norm, config.dim),
      depformer_text_emb_(config.text_card + 1, config.depformer.d_model,
                          config.depformer_low_rank_embeddings),
      depformer_(config.depformer) {
  config_.validate("LM configuration");
  const LmConfig& c = config_;
  const int64_t dep_dim = c.depformer.d_model;
  for (int i = 0; i < c.n_q; ++i) emb_.emplace_back(c.card + 1, c.dim);
  for (int i = 0; i + 1 < c.dep_q; ++i)
    depformer_emb_.emplace_back(c.card + 1, dep_dim, c.depformer_low_rank_embeddings);
  // One input projection per codebook with multi_linear, shared through the schedule.
  const auto& schedule = c.depformer.weights_per_step_schedule;
  int num_in = 1;
  if (c.depformer_multi_linear)
    num_in = schedule.empty() ? c.dep_q : *std::max_element(schedule.begin(), schedule.end()) + 1;
  depformer_in_.resize(static_cast<size_t>(num_in));
  linears_.resize(static_cast<size_t>(c.dep_q));
  extra_heads_.resize(static_cast<size_t>(c.extra_heads_num_heads));

  // Declared in the reference's module order, so the key list reads like its state_dict.
  Params p(&params_, dtype_);
  for (size_t i = 0; i < emb_.size(); ++i) emb_[i].declare(p.sub("emb").sub(i));
  text_emb_.declare(p.sub("text_emb"));
  text_linear_.declare(p.sub("text_linear"), c.text_card_out ? c.text_card_out : c.text_card, c.dim,
                       c.bias_proj);
  transformer_.declare(p.sub("transformer"));
  out_norm_.declare(p.sub("out_norm"));
  for (size_t i = 0; i < depformer_in_.size(); ++i)
    depformer_in_[i].declare(p.sub("depformer_in").sub(i), dep_dim, c.dim, false);
  // Without a depformer (speech-to-text), the reference has no depformer modules but its
  // depformer_in projections.
  for (size_t i = 0; i < depformer_emb_.size(); ++i)
    depformer_emb_[i].declare(p.sub("depformer_emb").sub(i));
  if (c.dep_q > 0) {
    depformer_text_emb_.declare(p.sub("depformer_text_emb"));
    depformer_.declare(p.sub("depformer"));
  }
  for (size_t i = 0; i < extra_heads_.size(); ++i)
    extra_heads_[i].declare(p.sub("extra_heads").sub(i), c.extra_heads_dim, c.dim, false);
  for (size_t i = 0; i < linears_.size(); ++i)
    linears_[i].declare(p.sub("linears").sub(i), c.card, dep_dim, c.bias_proj);
}

void LmModel::load(const std::string& path, const at::Device& device,
                   const WeightCacheOptions* cache, const LoadProgress& progress) {
  c10::InferenceMode guard;
  const auto file = SafetensorsFile::open(path);
  const bool quantized = weight_format_traits(weights_).quantized;
  std::optional<WeightCache> packed;
  if (cache && quantized && device.is_cpu()) packed.emplace(path, weights_, *cache);
  // The checkpoint's tensors are views of its mapping until read, so a weight found in the cache
  // never touches the checkpoint's pages when it is stored in bfloat16, as Kyutai ships it (a
  // float32 checkpoint is converted to bfloat16 on load, then quantized from that).
  load_strict(
      params_, file, device,
      [&](const ParamSpec& spec) {
        if (!spec.weight) {
          // A private copy of the small tensors (embeddings, norms) lets the mapping, and every
          // page that quantizing touched, go once the load is done.
          if (quantized) *spec.slot = spec.slot->clone();
          return;
        }
        auto hit = packed ? packed->find(spec.name, spec.shape[0], spec.shape[1]) : nullptr;
        if (hit)
          spec.weight->set_packed(std::move(hit));
        else
          spec.weight->pack(weights_);
        if (packed) packed->add(spec.name, spec.weight->shared_packed());
      },
      progress);
  if (packed) packed->write_if_built();
  device_ = device;
}

void LmModel::init_random(uint64_t seed, const at::Device& device, RandomDraw draw) {
  c10::InferenceMode guard;
  kyutai::init_random(params_, seed, device, pack_weights(weights_), draw);
  device_ = device;
}

void LmModel::save(const std::string& path) const {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& spec : params_)
    tensors[spec.name] = spec.weight ? spec.weight->dense().to(spec.dtype) : *spec.slot;
  write_tensors(path, tensors);
}

int64_t LmModel::step_weight_bytes() const {
  int64_t bytes = 0;
  for (const auto& spec : params_)
    if (spec.weight) bytes += spec.weight->bytes();
  // Per step each embedding table gives one row per token: negligible, but counted.
  const int64_t rows = 1 + config_.n_q + config_.dep_q;
  const int64_t row_bytes = config_.dim * at::elementSize(dtype_);
  return bytes + rows * row_bytes;
}

void LmModel::check_tokens(const at::Tensor& tokens) const {
  // Text tokens may be the initial token text_card, audio ones the initial token card; -1 means
  // "no input" in the reference.
  const at::Tensor text = tokens.select(1, 0);
  const at::Tensor audio = tokens.narrow(1, 1, config_.n_q);
  if (text.numel() &&
      (text.min().item<int64_t>() < -1 || text.max().item<int64_t>() > config_.text_card))
    throw InputError("text tokens must be in [0, " + std::to_string(config_.text_card) + "]");
  if (audio.numel() &&
      (audio.min().item<int64_t>() < -1 || audio.max().item<int64_t>() > config_.card))
    throw InputError("audio tokens must be in [0, " + std::to_string(config_.card) + "]");
}

at::Tensor LmModel::embed(const at::Tensor& tokens) const {
  at::Tensor sum;
  for (int k = 0; k < config_.n_q; ++k) {
    at::Tensor e = emb_[static_cast<size_t>(k)](tokens.select(1, k + 1));
    sum = sum.defined() ? sum + e : e;
  }
  return sum + text_emb_(tokens.select(1, 0));
}

at::Tensor LmModel::head(const at::Tensor& out, at::Tensor* text_logits) const {
  at::Tensor normed = out_norm_(out);
  *text_logits = text_linear_(normed).to(at::kFloat);
  return normed;
}

TransformerState LmModel::new_text_state(int64_t batch, KvCacheFormat kv) const {
  return transformer_.init_state(batch, at::TensorOptions().dtype(dtype_).device(device_), kv);
}

TransformerState LmModel::new_depformer_state(int64_t batch) const {
  if (config_.dep_q == 0) return {};
  return depformer_.init_state(batch, at::TensorOptions().dtype(dtype_).device(device_));
}

at::Tensor LmModel::text_step(const at::Tensor& tokens, TransformerState& state,
                              at::Tensor* text_logits) const {
  return text_step(tokens, std::vector<TransformerState*>{&state}, text_logits);
}

at::Tensor LmModel::text_step(const at::Tensor& tokens,
                              const std::vector<TransformerState*>& states,
                              at::Tensor* text_logits) const {
  c10::InferenceMode guard;
  const at::Tensor t = tokens.to(device_, at::kLong).unsqueeze(2);  // [B, K, 1]
  check_tokens(t);
  at::Tensor out = head(transformer_.step(embed(t), states), text_logits);
  *text_logits = text_logits->select(1, 0);
  return out;
}

at::Tensor LmModel::depformer_input(int cb, const at::Tensor& transformer_out,
                                    const at::Tensor& tokens) const {
  const auto& schedule = config_.depformer.weights_per_step_schedule;
  size_t in = 0;
  if (config_.depformer_multi_linear)
    in = static_cast<size_t>(schedule.empty() ? cb : schedule[static_cast<size_t>(cb)]);
  const at::Tensor token_in =
      cb == 0 ? depformer_text_emb_(tokens) : depformer_emb_[static_cast<size_t>(cb - 1)](tokens);
  return depformer_in_[in](transformer_out) + token_in;
}

at::Tensor LmModel::depformer_step(int cb, const at::Tensor& previous,
                                   const at::Tensor& transformer_out,
                                   TransformerState& state) const {
  return depformer_step(cb, previous, transformer_out, std::vector<TransformerState*>{&state});
}

at::Tensor LmModel::depformer_step(int cb, const at::Tensor& previous,
                                   const at::Tensor& transformer_out,
                                   const std::vector<TransformerState*>& states) const {
  c10::InferenceMode guard;
  const at::Tensor x =
      depformer_input(cb, transformer_out, previous.to(device_, at::kLong).view({-1, 1}));
  const at::Tensor y = depformer_.step(x, states);
  return linears_[static_cast<size_t>(cb)](y).select(1, 0).to(at::kFloat);
}

at::Tensor LmModel::extra_heads(const at::Tensor& transformer_out) const {
  c10::InferenceMode guard;
  const at::Tensor x = transformer_out.reshape({transformer_out.size(0), -1});
  std::vector<at::Tensor> heads;
  for (const Linear& head : extra_heads_) heads.push_back(at::softmax(head(x).to(at::kFloat), -1));
  if (heads.empty()) return at::empty({x.size(0), 0, config_.extra_heads_dim}, at::kFloat);
  return at::stack(heads, 1);
}

at::Tensor LmModel::depformer_logits(const at::Tensor& out, const at::Tensor& targets) const {
  const int64_t batch = out.size(0), steps = out.size(1);
  const int dep_q = config_.dep_q;
  if (dep_q == 0)
    return at::empty({batch, 0, steps, config_.card}, out.options().dtype(at::kFloat));
  std::vector<at::Tensor> inputs;
  for (int cb = 0; cb < dep_q; ++cb) {
    // Codebook cb's depformer input is the token just before it: the text for cb 0.
    inputs.push_back(depformer_input(cb, out, targets.select(1, cb)));
  }
  // [B, T, dep_q, D] -> [B*T, dep_q, D]: the depformer runs along the codebooks of each step.
  const at::Tensor dep_out =
      depformer_.forward(at::stack(inputs, 2).view({batch * steps, dep_q, -1}));
  std::vector<at::Tensor> logits;
  for (int cb = 0; cb < dep_q; ++cb)
    logits.push_back(
        linears_[static_cast<size_t>(cb)](dep_out.select(1, cb)).view({batch, steps, -1}));
  return at::stack(logits, 1).to(at::kFloat);
}

LmOutput LmModel::forward(const at::Tensor& codes_in) const {
  c10::InferenceMode guard;
  const LmConfig& c = config_;
  if (codes_in.dim() != 3 || codes_in.size(1) != c.num_codebooks())
    throw InputError("codes must be [batch, " + std::to_string(c.num_codebooks()) + ", steps]");
  const at::Tensor codes = codes_in.to(device_, at::kLong);
  check_tokens(codes);
  const int64_t batch = codes.size(0), steps = codes.size(2);
  std::vector<int64_t> initial(static_cast<size_t>(c.num_codebooks()), c.audio_initial_token());
  initial[0] = c.text_initial_token();
  at::Tensor first = at::tensor(initial, codes.options()).view({1, -1, 1}).expand({batch, -1, 1});
  // The model reads step t-1 of the delayed streams to predict step t.
  const at::Tensor delayed = at::cat({first, delay(codes, c.delays, initial)}, 2);
  at::Tensor text_logits;
  const at::Tensor out =
      head(transformer_.forward(embed(delayed.narrow(2, 0, steps))), &text_logits);

  LmOutput result;
  const at::Tensor audio = depformer_logits(out, delayed.narrow(2, 1, steps));
  const std::vector<int> audio_delays(c.delays.begin() + 1, c.delays.begin() + 1 + c.dep_q);
  if (c.dep_q > 0) {
    result.logits = undelay(audio, audio_delays, &result.mask);
    result.mask = result.mask & (codes.narrow(1, 1, c.dep_q) != -1);
  } else {
    result.logits = audio;
    result.mask = at::empty({batch, 0, steps}, codes.options().dtype(at::kBool));
  }
  result.text_logits = undelay(text_logits.unsqueeze(1), {c.delays[0]}, &result.text_mask);
  result.text_mask = result.text_mask & (codes.narrow(1, 0, 1) != -1);
  return result;
}

}  // namespace kyutai
