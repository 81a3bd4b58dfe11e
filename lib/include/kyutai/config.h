// Model configurations in the reference's JSON schema, and the presets of Kyutai's releases.
// Torch-free.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kyutai {

// The string-valued options of the reference, parsed once when a configuration is read so that
// no layer compares names per call. The JSON keeps the reference's names.
enum class Activation { gelu, silu, relu, sigmoid, tanh };  // "gelu" is the erf form
enum class NormKind { layer_norm, layer_norm_f32, rms_norm, rms_norm_f32 };
enum class PositionalEmbedding { none, sin, rope, sin_rope };
enum class PadMode { constant, replicate };  // the causal ones; "reflect" is refused

// Keyword arguments of the reference StreamingTransformer (Mimi's and the LM's).
struct TransformerConfig {
  int d_model = 512;
  int num_heads = 8;
  int num_layers = 8;
  int dim_feedforward = 2048;
  bool causal = true;
  std::optional<double> layer_scale = 0.01;
  std::optional<int> context = 250;  // attention window in steps; none = unbounded
  double max_period = 10000;
  std::optional<Activation> gating;  // "none" in JSON: linear1 -> GELU -> linear2
  NormKind norm = NormKind::layer_norm;
  PositionalEmbedding positional_embedding = PositionalEmbedding::rope;
  // Depformer only: one weight set per step, optionally shared through a schedule.
  int weights_per_step = 0;
  std::vector<int> weights_per_step_schedule;

  int head_dim() const { return d_model / num_heads; }
  // Number of distinct weight sets (1 without weights per step).
  int num_weight_sets() const;
};

struct SeanetConfig {
  int channels = 1;
  int dimension = 512;
  int n_filters = 64;
  int n_residual_layers = 1;
  std::vector<int> ratios = {8, 6, 5, 4};  // decoder order; the encoder runs them reversed
  int kernel_size = 7;
  int last_kernel_size = 3;
  int residual_kernel_size = 3;
  int dilation_base = 2;
  int compress = 2;
  bool true_skip = true;
  PadMode pad_mode = PadMode::constant;

  int hop_length() const;
};

struct QuantizerConfig {
  int dimension = 256;
  int n_q = 32;
  int n_q_semantic = 1;
  int bins = 2048;
  int input_dimension = 512;
  int output_dimension = 512;
};

struct MimiConfig {
  int sample_rate = 24000;
  int channels = 1;
  double frame_rate = 12.5;
  SeanetConfig seanet;
  QuantizerConfig quantizer;
  TransformerConfig transformer;  // encoder and decoder transformers
  int transformer_input_dimension = 512;
  std::vector<int> transformer_output_dimensions = {512};

  // The Mimi released with Moshi in September 2024 (tokenizer-e351c8d8-checkpoint125).
  static MimiConfig moshi_2024();
  // Parses the reference schema ({"sample_rate", "frame_rate", "seanet", "quantizer",
  // "transformer"}). Throws ConfigError naming `origin` on missing or invalid values.
  static MimiConfig from_json(const std::string& text, const std::string& origin);
  static MimiConfig from_file(const std::string& path);

  int frame_size() const { return static_cast<int>(sample_rate / frame_rate); }
  double encoder_frame_rate() const {
    return static_cast<double>(sample_rate) / seanet.hop_length();
  }
  // Stride of the learnt resampler between the encoder and the quantizer (1: none).
  int resample_stride() const;
  // Throws ConfigError when the configuration cannot be built.
  void validate(const std::string& origin) const;
};

// A speech-to-text model's config.json "stt_config": how far its text lags the audio, and the
// silence the reference puts before the audio. Absent keys take the defaults of Kyutai's script
// (delayed-streams-modeling, stt_from_file_pytorch.py).
struct SttTiming {
  double audio_delay_seconds = 5.0;
  double audio_silence_prefix_seconds = 1.0;
};

// The keyword arguments of the reference LMModel (Kyutai's config.json schema), plus the file
// names a repository's config.json gives.
struct LmConfig {
  int dim = 128;
  int text_card = 32000;
  int text_card_out = 0;  // 0: same as text_card
  int existing_text_padding_id = 3;
  int existing_text_end_padding_id = 0;
  int n_q = 8;    // audio streams the model reads (its own dep_q, then the user's)
  int dep_q = 8;  // audio streams the depformer generates
  int card = 1024;
  double hidden_scale = 4;
  bool bias_proj = false;
  std::vector<int> delays = {0};  // text, then the n_q audio streams
  int extra_heads_num_heads = 0;
  int extra_heads_dim = 6;
  TransformerConfig transformer;  // d_model = dim
  // Depformer ("depformer_*" keys).
  TransformerConfig depformer;
  bool depformer_multi_linear = false;
  int depformer_low_rank_embeddings = 0;  // 0: full-rank embeddings
  // Files named by a repository's config.json (empty: the repository defaults).
  std::string moshi_name, mimi_name, mimi_config_name, tokenizer_name, model_type = "moshi";
  // model_type "stt" (Kyutai's speech-to-text models: dep_q 0, no depformer) only.
  std::optional<SttTiming> stt;

  // The Moshi 7B released in September 2024 (the reference's _lm_kwargs), used when a repository
  // has no config.json (kyutai/moshiko-pytorch-bf16, kyutai/moshika-pytorch-bf16).
  static LmConfig moshi_7b_2024();
  static LmConfig from_json(const std::string& text, const std::string& origin);
  static LmConfig from_file(const std::string& path);

  int num_codebooks() const { return n_q + 1; }
  int max_delay() const;
  int user_codebooks() const { return n_q - dep_q; }
  // Mimi codebooks to encode for this LM: enough for the user's stream and for Moshi's own, as
  // the reference's get_mimi sets them: max(dep_q, n_q - dep_q).
  int mimi_codebooks() const { return dep_q > n_q - dep_q ? dep_q : n_q - dep_q; }
  bool is_stt() const { return model_type == "stt"; }
  int text_initial_token() const { return text_card; }
  int audio_initial_token() const { return card; }
  void validate(const std::string& origin) const;
};

// True when `text` is a JSON object holding `key` (used to tell Mimi configs from LM configs).
bool json_has_key(const std::string& text, const std::string& key);

}  // namespace kyutai
