#include "kyutai/config.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <utility>

#include "kyutai/error.h"
#include "kyutai/io/config_json.h"

namespace kyutai {

using nlohmann::json;

int TransformerConfig::num_weight_sets() const {
  if (weights_per_step == 0) return 1;
  if (weights_per_step_schedule.empty()) return weights_per_step;
  int most = 0;
  for (int i : weights_per_step_schedule) most = std::max(most, i);
  return most + 1;
}

int SeanetConfig::hop_length() const {
  int hop = 1;
  for (int r : ratios) hop *= r;
  return hop;
}

int MimiConfig::resample_stride() const {
  return static_cast<int>(std::lround(encoder_frame_rate() / frame_rate));
}

MimiConfig MimiConfig::moshi_2024() {
  return MimiConfig();
}

namespace {

using detail::IntRange;
using detail::JsonReader;
using detail::RealRange;

// What a configuration may ask for. Every number read from a file is checked against these, so
// that no file can overflow an int, make a loop run for ever or allocate more than a model of
// its kind needs. They are generous: Moshi 7B has dim 4096, 32 layers, a context of 3000 steps,
// 17 streams and delays of 1; Mimi has 24 kHz, 8 ratios' product 1920 and 32 codebooks.
constexpr IntRange kDim{1, 1 << 16};          // d_model, dimensions, embeddings
constexpr IntRange kFeedForward{1, 1 << 20};  // hidden width of the feed-forward
constexpr IntRange kHeads{1, 1024};
constexpr IntRange kLayers{0, 1024};
constexpr IntRange kContext{1, 1 << 20};  // KV cache steps; the cache bytes are bounded too
constexpr IntRange kCodebooks{1, 64};     // n_q, dep_q, the quantizer's n_q
constexpr IntRange kCardinality{1, 1 << 16};
constexpr IntRange kTextCard{1, 1 << 20};
constexpr IntRange kDelay{0, 4096};  // steps
constexpr IntRange kSampleRate{1, 384000};
constexpr IntRange kKernel{1, 1024};
constexpr IntRange kRatio{1, 1024};
constexpr IntRange kResidualLayers{0, 64};
constexpr IntRange kDilationBase{1, 64};
constexpr RealRange kPeriod{1e-3, 1e12};  // rope / sinusoid max_period
constexpr RealRange kLayerScale{-1e6, 1e6};
constexpr RealRange kHiddenScale{1.0 / 64, 64};
constexpr RealRange kFrameRate{1e-2, 384000};
constexpr RealRange kSeconds{0, 3600};  // stt_config's delay and silence prefix
// One stream's KV caches in float32: Moshi 7B at 3000 steps needs 3.1 GB.
constexpr int64_t kMaxKvCacheBytes = int64_t(16) << 30;
// Largest hop, receptive field and dilation of the SEANet (Mimi: hop 1920, dilation 2).
constexpr int64_t kMaxHop = 1 << 20;
constexpr int64_t kMaxDilation = 1 << 16;

// The reference's name of each value of an option, for reading and for error messages.
template <typename E>
using Names = std::initializer_list<std::pair<const char*, E>>;

const Names<Activation> kActivations = {{"gelu", Activation::gelu},
                                        {"silu", Activation::silu},
                                        {"relu", Activation::relu},
                                        {"sigmoid", Activation::sigmoid},
                                        {"tanh", Activation::tanh}};
const Names<NormKind> kNorms = {{"layer_norm", NormKind::layer_norm},
                                {"layer_norm_f32", NormKind::layer_norm_f32},
                                {"rms_norm", NormKind::rms_norm},
                                {"rms_norm_f32", NormKind::rms_norm_f32}};
const Names<PositionalEmbedding> kPositionalEmbeddings = {
    {"none", PositionalEmbedding::none},
    {"sin", PositionalEmbedding::sin},
    {"rope", PositionalEmbedding::rope},
    {"sin_rope", PositionalEmbedding::sin_rope}};

// The value named by string option `key`; `fallback` when absent. An unknown name is a
// ConfigError that quotes it: "<where>: unsupported <what> '<name>'".
template <typename E>
E read_enum(const JsonReader& r, const std::string& key, const Names<E>& names, E fallback,
            const std::string& what) {
  if (!r.find(key)) return fallback;
  const std::string name = r.get_string(key, "");
  for (const auto& [n, value] : names)
    if (name == n) return value;
  throw ConfigError(r.where() + ": unsupported " + what + " '" + name + "'");
}

// Gating is an activation name or "none" (the plain GELU feed-forward).
std::optional<Activation> read_gating(const JsonReader& r, const std::string& key,
                                      std::optional<Activation> fallback) {
  if (!r.find(key)) return fallback;
  if (r.get_string(key, "") == "none") return std::nullopt;
  return read_enum(r, key, kActivations, Activation::gelu, "gating");
}

// The reference StreamingTransformer keyword arguments, with its class defaults.
TransformerConfig read_transformer(const JsonReader& r, const std::string& prefix) {
  TransformerConfig t;
  t.d_model = r.require_int(prefix + "d_model", kDim);
  t.num_heads = r.require_int(prefix + "num_heads", kHeads);
  t.num_layers = r.require_int(prefix + "num_layers", kLayers);
  t.dim_feedforward = r.get_int(prefix + "dim_feedforward", 2048, kFeedForward);
  t.causal = r.get_bool(prefix + "causal", false);
  t.layer_scale = r.get_optional_double(prefix + "layer_scale", std::nullopt, kLayerScale);
  t.context = r.get_optional_int(prefix + "context", std::nullopt, kContext);
  t.max_period = r.get_double(prefix + "max_period", 10000, kPeriod);
  t.gating = read_gating(r, prefix + "gating", std::nullopt);
  t.norm = read_enum(r, prefix + "norm", kNorms, NormKind::layer_norm, "norm");
  t.positional_embedding = read_enum(r, prefix + "positional_embedding", kPositionalEmbeddings,
                                     PositionalEmbedding::sin, "positional_embedding");
  return t;
}

void validate_transformer(const TransformerConfig& t, const std::string& where) {
  auto bad = [&](const std::string& what) { throw ConfigError(where + ": " + what); };
  if (t.d_model <= 0 || t.num_heads <= 0 || t.d_model % t.num_heads != 0)
    bad("d_model must be a positive multiple of num_heads");
  const PositionalEmbedding p = t.positional_embedding;
  if (t.head_dim() % 2 != 0 && p != PositionalEmbedding::sin && p != PositionalEmbedding::none)
    bad("rope needs an even head dimension");
  if (t.num_layers < 0 || t.dim_feedforward <= 0 || t.dim_feedforward > kFeedForward.hi)
    bad("num_layers/dim_feedforward out of range");
  if (!t.causal) bad("only causal transformers are supported");
  if (t.context && *t.context <= 0) bad("context must be positive");
  // The reference cannot stream without one either: the KV cache is sized by it.
  if (!t.context && !t.weights_per_step)
    bad("context is missing: a streaming transformer needs it to size its KV cache");
  if (!t.gating && t.weights_per_step) bad("weights per step need gating");
  if (!t.weights_per_step_schedule.empty() &&
      static_cast<int>(t.weights_per_step_schedule.size()) != t.weights_per_step)
    bad("weights_per_step_schedule must have one entry per step");
  const int64_t steps = t.context.value_or(t.weights_per_step);
  const int64_t kv_bytes = int64_t(2) * t.num_layers * steps * t.d_model * 4;
  if (kv_bytes > kMaxKvCacheBytes)
    bad("context " + std::to_string(steps) + " needs " + std::to_string(kv_bytes >> 20) +
        " MiB of KV cache per stream, more than the " + std::to_string(kMaxKvCacheBytes >> 20) +
        " MiB allowed");
}

// The SEANet's hop (product of the ratios) and largest dilation, without overflow.
void validate_seanet_sizes(const SeanetConfig& s, const std::string& origin) {
  int64_t hop = 1, dilation = 1;
  for (int r : s.ratios)
    if ((hop *= r) > kMaxHop)
      throw ConfigError(origin + ": seanet.ratios multiply to more than " +
                        std::to_string(kMaxHop) + " samples per frame");
  for (int j = 1; j < s.n_residual_layers; ++j)
    if ((dilation *= s.dilation_base) > kMaxDilation)
      throw ConfigError(origin + ": seanet.dilation_base ^ (n_residual_layers - 1) exceeds " +
                        std::to_string(kMaxDilation));
}

}  // namespace

MimiConfig MimiConfig::from_json(const std::string& text, const std::string& origin) {
  const json doc = detail::parse_json(text, origin);
  JsonReader top(doc, origin);
  MimiConfig c;
  c.sample_rate = top.require_int("sample_rate", kSampleRate);
  c.channels = top.require_int("channels", kCodebooks);
  c.frame_rate = top.get_double("frame_rate", 0.0, kFrameRate);
  top.require("frame_rate");

  // SEANet class defaults where a key is absent, as the reference constructors have them.
  const JsonReader s = top.child("seanet");
  c.seanet.channels = s.get_int("channels", 1, kCodebooks);
  c.seanet.dimension = s.get_int("dimension", 128, kDim);
  c.seanet.n_filters = s.get_int("n_filters", 32, kDim);
  c.seanet.n_residual_layers = s.get_int("n_residual_layers", 3, kResidualLayers);
  c.seanet.ratios = s.get_ints("ratios", {8, 5, 4, 2}, kRatio);
  c.seanet.kernel_size = s.get_int("kernel_size", 7, kKernel);
  c.seanet.last_kernel_size = s.get_int("last_kernel_size", 7, kKernel);
  c.seanet.residual_kernel_size = s.get_int("residual_kernel_size", 3, kKernel);
  c.seanet.dilation_base = s.get_int("dilation_base", 2, kDilationBase);
  c.seanet.compress = s.get_int("compress", 2, kDim);
  c.seanet.true_skip = s.get_bool("true_skip", true);
  // The reference's default, "reflect", is not causal: a file must name its padding.
  const std::string pad_mode = s.get_string("pad_mode", "reflect");
  if (pad_mode != "constant" && pad_mode != "replicate")
    throw ConfigError(origin +
                      ": seanet.pad_mode must be 'constant' or 'replicate' for a causal "
                      "model, not '" +
                      pad_mode + "'");
  c.seanet.pad_mode = pad_mode == "replicate" ? PadMode::replicate : PadMode::constant;
  auto unsupported = [&](bool bad, const std::string& what) {
    if (bad) throw ConfigError(origin + ": seanet." + what + " is not supported");
  };
  unsupported(!s.get_bool("causal", false), "causal=false");
  unsupported(s.get_string("activation", "ELU") != "ELU", "activation other than ELU");
  unsupported(s.get_string("norm", "none") != "none", "norm other than 'none'");
  unsupported(s.has("final_activation") && s.find("final_activation"), "final_activation");

  const JsonReader q = top.child("quantizer");
  c.quantizer.dimension = q.get_int("dimension", 128, kDim);
  c.quantizer.n_q = q.get_int("n_q", 8, kCodebooks);
  c.quantizer.n_q_semantic = q.get_int("n_q_semantic", 1, kCodebooks);
  c.quantizer.bins = q.get_int("bins", 1024, kCardinality);
  c.quantizer.input_dimension = q.get_int("input_dimension", c.quantizer.dimension, kDim);
  c.quantizer.output_dimension = q.get_int("output_dimension", c.quantizer.dimension, kDim);

  const JsonReader t = top.child("transformer");
  c.transformer = read_transformer(t, "");
  c.transformer_input_dimension = t.require_int("input_dimension", kDim);
  c.transformer_output_dimensions = t.get_ints("output_dimensions", {}, kDim);
  if (!t.get_bool("conv_layout", false))
    throw ConfigError(origin + ": transformer.conv_layout must be true for Mimi");
  c.validate(origin);
  return c;
}

MimiConfig MimiConfig::from_file(const std::string& path) {
  return from_json(detail::read_text_file(path), path);
}

void MimiConfig::validate(const std::string& origin) const {
  auto bad = [&](const std::string& what) { throw ConfigError(origin + ": " + what); };
  if (sample_rate <= 0 || frame_rate <= 0) bad("sample_rate and frame_rate must be positive");
  if (channels != 1 || seanet.channels != 1) bad("only mono Mimi models are supported");
  if (seanet.ratios.empty() || seanet.n_filters <= 0 || seanet.dimension <= 0 ||
      seanet.compress <= 0)
    bad("seanet sizes must be positive");
  for (int r : seanet.ratios)
    if (r <= 0) bad("seanet ratios must be positive");
  validate_seanet_sizes(seanet, origin);
  const double enc_rate = encoder_frame_rate();
  const double stride = enc_rate / frame_rate;
  if (stride < 1 || std::fabs(stride - std::round(stride)) > 1e-9)
    bad("the encoder frame rate must be an integer multiple of frame_rate");
  if (std::fabs(sample_rate / frame_rate - frame_size()) > 1e-9)
    bad("sample_rate / frame_rate must be a whole number of samples");
  const QuantizerConfig& q = quantizer;
  if (q.n_q <= q.n_q_semantic || q.n_q_semantic < 1 || q.bins <= 0 || q.dimension <= 0)
    bad("quantizer needs n_q > n_q_semantic >= 1 and positive sizes");
  if (q.input_dimension != seanet.dimension || q.output_dimension != seanet.dimension)
    bad("quantizer input/output dimensions must equal seanet.dimension");
  if (transformer_input_dimension != seanet.dimension ||
      transformer_output_dimensions.size() != 1 ||
      transformer_output_dimensions[0] != seanet.dimension)
    bad("transformer input/output dimensions must equal seanet.dimension");
  validate_transformer(transformer, origin + ": transformer");
}

namespace {

// The reference's _lm_kwargs for Moshi 7B.
constexpr const char* kMoshi7b2024 = R"({
  "dim": 4096, "text_card": 32000, "existing_text_padding_id": 3, "n_q": 16, "dep_q": 8,
  "card": 2048, "num_heads": 32, "num_layers": 32, "hidden_scale": 4.125, "causal": true,
  "layer_scale": null, "context": 3000, "max_period": 10000, "gating": "silu",
  "norm": "rms_norm_f32", "positional_embedding": "rope", "depformer_dim": 1024,
  "depformer_dim_feedforward": 4224, "depformer_num_heads": 16, "depformer_num_layers": 6,
  "depformer_layer_scale": null, "depformer_multi_linear": true, "depformer_context": 8,
  "depformer_max_period": 10000, "depformer_gating": "silu", "depformer_pos_emb": "none",
  "depformer_weights_per_step": true,
  "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]
})";

// Options of the reference LMModel that change the weights or the computation and that this
// port does not implement: refusing them beats computing something else.
void reject_unsupported(const JsonReader& r, const std::string& origin) {
  auto refuse = [&](bool present, const std::string& what) {
    if (present) throw ConfigError(origin + ": " + what + " is not supported");
  };
  refuse(r.find("conditioners") != nullptr, "conditioning ('conditioners')");
  refuse(r.find("fuser") != nullptr, "conditioning ('fuser')");
  refuse(r.get_bool("demux_second_stream", false) || r.get_bool("demux_second_text_stream", false),
         "a demuxed second text stream");
  refuse(r.get_bool("norm_emb", false), "'norm_emb'");
  refuse(r.find("depformer_norm") != nullptr, "'depformer_norm'");
  refuse(r.get_bool("lora", false), "LoRA ('lora')");
  refuse(r.get_bool("quantize", false), "quantized weights ('quantize')");
  refuse(r.get_int("kv_repeat", 1, kHeads) != 1, "grouped attention ('kv_repeat')");
  refuse(r.get_bool("cross_attention", false), "cross attention");
}

TransformerConfig read_depformer(const JsonReader& r, const TransformerConfig& main,
                                 double hidden_scale, int dep_q) {
  TransformerConfig d = main;
  d.d_model = r.get_int("depformer_dim", 256, kDim);
  d.num_heads = r.get_int("depformer_num_heads", main.num_heads, kHeads);
  d.num_layers = r.get_int("depformer_num_layers", main.num_layers, kLayers);
  // hidden_scale and dims are bounded, so the product fits an int.
  d.dim_feedforward = r.find("depformer_dim_feedforward")
                          ? r.get_int("depformer_dim_feedforward", 0, kFeedForward)
                          : static_cast<int>(hidden_scale * d.d_model);
  d.layer_scale = r.get_optional_double("depformer_layer_scale", main.layer_scale, kLayerScale);
  d.max_period = r.get_double("depformer_max_period", main.max_period, kPeriod);
  d.gating = read_gating(r, "depformer_gating", main.gating);
  d.positional_embedding = read_enum(r, "depformer_pos_emb", kPositionalEmbeddings,
                                     PositionalEmbedding::sin, "depformer_pos_emb");
  d.weights_per_step = r.get_bool("depformer_weights_per_step", false) ? dep_q : 0;
  d.weights_per_step_schedule =
      r.get_ints("depformer_weights_per_step_schedule", {}, {0, kCodebooks.hi - 1});
  // The reference ignores depformer_context: the depformer attends over the dep_q steps of one
  // frame, and its KV cache holds exactly those.
  d.context = d.weights_per_step ? std::nullopt : std::optional<int>(dep_q);
  return d;
}

// config.json's "stt_config", when there is one.
std::optional<SttTiming> read_stt_timing(const JsonReader& r) {
  if (!r.find("stt_config")) return std::nullopt;
  const JsonReader s = r.child("stt_config");
  SttTiming t;
  t.audio_delay_seconds = s.get_double("audio_delay_seconds", t.audio_delay_seconds, kSeconds);
  t.audio_silence_prefix_seconds =
      s.get_double("audio_silence_prefix_seconds", t.audio_silence_prefix_seconds, kSeconds);
  return t;
}

// What a speech-to-text model must be for Stt to run it as the reference's LMGen and script do.
void validate_stt(const LmConfig& c, const std::string& origin) {
  auto bad = [&](const std::string& what) {
    throw ConfigError(origin + ": a speech-to-text model (model_type 'stt') " + what);
  };
  if (c.dep_q != 0) bad("has no depformer: dep_q must be 0, not " + std::to_string(c.dep_q));
  if (!c.stt) bad("needs stt_config {audio_delay_seconds, audio_silence_prefix_seconds}");
  if (c.max_delay() != 0)
    bad("reads every stream at once: its delays must all be 0 (the text's lag is "
        "stt_config.audio_delay_seconds)");
  if (c.text_card_out > c.text_card)
    bad("writes text tokens it can read: text_card_out must not exceed text_card");
}

}  // namespace

LmConfig LmConfig::moshi_7b_2024() {
  return from_json(kMoshi7b2024, "Moshi 7B defaults");
}

LmConfig LmConfig::from_json(const std::string& text, const std::string& origin) {
  const json doc = detail::parse_json(text, origin);
  const JsonReader r(doc, origin);
  reject_unsupported(r, origin);
  LmConfig c;
  c.dim = r.get_int("dim", 128, kDim);
  c.text_card = r.get_int("text_card", 32000, kTextCard);
  c.text_card_out = r.get_int("text_card_out", 0, {0, kTextCard.hi});
  c.existing_text_padding_id = r.get_int("existing_text_padding_id", 3, {0, kTextCard.hi});
  c.existing_text_end_padding_id = r.get_int("existing_text_end_padding_id", 0, {0, kTextCard.hi});
  c.n_q = r.get_int("n_q", 8, kCodebooks);
  c.dep_q = r.get_int("dep_q", 8, {0, kCodebooks.hi});  // 0: no depformer (STT)
  c.card = r.get_int("card", 1024, kCardinality);
  c.hidden_scale = r.get_double("hidden_scale", 4, kHiddenScale);
  c.bias_proj = r.get_bool("bias_proj", false);
  c.delays = r.get_ints("delays", {0}, kDelay);
  c.extra_heads_num_heads = r.get_int("extra_heads_num_heads", 0, {0, kHeads.hi});
  c.extra_heads_dim = r.get_int("extra_heads_dim", 6, kDim);
  TransformerConfig& t = c.transformer;
  t.d_model = c.dim;
  t.num_heads = r.get_int("num_heads", 8, kHeads);
  t.num_layers = r.require_int("num_layers", kLayers);
  t.dim_feedforward = static_cast<int>(c.hidden_scale * c.dim);
  t.causal = r.get_bool("causal", true);
  t.context = r.get_optional_int("context", std::nullopt, kContext);
  t.layer_scale = r.get_optional_double("layer_scale", std::nullopt, kLayerScale);
  t.max_period = r.get_double("max_period", 10000, kPeriod);
  t.gating = read_gating(r, "gating", std::nullopt);
  t.norm = read_enum(r, "norm", kNorms, NormKind::layer_norm, "norm");
  t.positional_embedding = read_enum(r, "positional_embedding", kPositionalEmbeddings,
                                     PositionalEmbedding::sin, "positional_embedding");
  c.depformer = read_depformer(r, t, c.hidden_scale, c.dep_q);
  c.depformer_multi_linear = r.get_bool("depformer_multi_linear", false);
  c.depformer_low_rank_embeddings = r.get_int("depformer_low_rank_embeddings", 0, {0, kDim.hi});
  c.moshi_name = r.get_string("moshi_name", "");
  c.mimi_name = r.get_string("mimi_name", "");
  c.mimi_config_name = r.get_string("mimi_config_name", "");
  c.tokenizer_name = r.get_string("tokenizer_name", "");
  c.model_type = r.get_string("model_type", "moshi");
  c.stt = read_stt_timing(r);
  c.validate(origin);
  return c;
}

LmConfig LmConfig::from_file(const std::string& path) {
  return from_json(detail::read_text_file(path), path);
}

int LmConfig::max_delay() const {
  int most = 0;
  for (int d : delays) most = std::max(most, d);
  return most;
}

void LmConfig::validate(const std::string& origin) const {
  auto bad = [&](const std::string& what) { throw ConfigError(origin + ": " + what); };
  if (dim <= 0 || card <= 0 || text_card <= 0 || n_q <= 0 || hidden_scale <= 0)
    bad("dim, card, text_card, n_q and hidden_scale must be positive");
  if (model_type != "moshi" && model_type != "stt")
    bad("model_type '" + model_type + "' is not supported (only 'moshi' and 'stt')");
  if (is_stt())
    validate_stt(*this, origin);
  else if (dep_q <= 0 || dep_q > n_q)
    bad("dep_q must be between 1 and n_q (a model without a depformer is a speech-to-text "
        "model: model_type 'stt')");
  if (static_cast<int>(delays.size()) != num_codebooks())
    bad("delays must have n_q + 1 = " + std::to_string(num_codebooks()) + " entries, got " +
        std::to_string(delays.size()));
  for (int d : delays)
    if (d < 0) bad("delays must not be negative");
  if (existing_text_padding_id < 0 || existing_text_padding_id >= text_card)
    bad("existing_text_padding_id must be a text token");
  const auto& schedule = depformer.weights_per_step_schedule;
  if (!schedule.empty() && static_cast<int>(schedule.size()) != dep_q)
    bad("depformer_weights_per_step_schedule must have dep_q entries");
  for (int i : schedule)
    if (i < 0 || i >= dep_q)
      bad("depformer_weights_per_step_schedule entries must be in [0, dep_q)");
  validate_transformer(transformer, origin + ": transformer");
  if (dep_q > 0) validate_transformer(depformer, origin + ": depformer");
}

bool json_has_key(const std::string& text, const std::string& key) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return doc.is_object() && doc.contains(key);
}

}  // namespace kyutai
