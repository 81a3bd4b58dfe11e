// Public, torch-free interface to the Moshi language model, for the GStreamer elements and the
// tools. A Moshi object holds the immutable weights and the text tokenizer and can be shared by
// many conversations; each MoshiConversation has its own state (KV cache, token history, RNG).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kyutai/hub.h"
#include "kyutai/progress.h"
#include "kyutai/sampling.h"
#include "kyutai/text.h"

namespace kyutai {

class LmModel;

struct MoshiFormat {
  int user_codebooks = 0;   // Mimi codebooks of the user's audio the model reads
  int model_codebooks = 0;  // Mimi codebooks of Moshi's voice it writes (dep_q)
  int cardinality = 0;      // audio codes are in [0, cardinality)
  int text_card = 0;
  int max_delay = 0;  // steps without output at the start of a conversation
  int context = 0;    // steps the temporal transformer attends to (0: unbounded)
};

class Moshi {
 public:
  // Loads the LM and its tokenizer onto `device` ("cpu", "cuda", "cuda:N") in `dtype`
  // ("float32" or "bfloat16"), telling `progress` the fraction of the weights loaded as tensors
  // come in. Throws NotFoundError, FormatError, CheckpointError, ConfigError (also when the
  // tokenizer's size is not the model's text_card).
  static std::shared_ptr<const Moshi> load(const MoshiFiles& files,
                                           const std::string& device = "cpu",
                                           const std::string& dtype = "float32",
                                           const LoadProgress& progress = {});
  // As load, but shares the copy already loaded in this process for the same files, device and
  // dtype (without calling `progress`).
  static std::shared_ptr<const Moshi> load_shared(const MoshiFiles& files,
                                                  const std::string& device = "cpu",
                                                  const std::string& dtype = "float32",
                                                  const LoadProgress& progress = {});
  // Random weights for a configuration file (benchmarks); `tokenizer` may be empty.
  static std::shared_ptr<const Moshi> random(const std::string& config, uint64_t seed,
                                             const std::string& dtype = "float32",
                                             const std::string& tokenizer = "");
  ~Moshi();
  // Writes the LM weights as a safetensors file with the reference's key names.
  void save_weights(const std::string& path) const;

  const MoshiFormat& format() const { return format_; }
  const LmModel& model() const { return *model_; }
  // Null for a model made by random() without a tokenizer.
  const std::shared_ptr<const TextTokenizer>& tokenizer() const { return tokenizer_; }

 private:
  Moshi(std::unique_ptr<LmModel> model, std::shared_ptr<const TextTokenizer> tokenizer);
  std::unique_ptr<LmModel> model_;
  std::shared_ptr<const TextTokenizer> tokenizer_;
  MoshiFormat format_;
};

// One conversation: one step per 80 ms frame of the user's audio codes.
class MoshiConversation {
 public:
  struct Step {
    bool ready = false;  // false during the first max_delay steps
    int64_t text_token = -1;
    std::vector<int64_t> audio;  // model_codebooks codes of Moshi's voice
    std::string text;            // text this step completes (padding gives none), valid UTF-8
  };

  MoshiConversation(std::shared_ptr<const Moshi> moshi, uint64_t seed);
  ~MoshiConversation();
  // `count` >= user_codebooks codes, the first ones used. Throws InputError on bad codes.
  Step step(const int64_t* user_codes, int count, const SamplingParams& params);
  // Starts a new conversation with a new seed.
  void reset(uint64_t seed);
  // Text still held at the end of a conversation (an unfinished UTF-8 character, as U+FFFD).
  std::string flush_text();
  int64_t steps() const;
  const Moshi& moshi() const { return *moshi_; }

 private:
  struct State;
  std::shared_ptr<const Moshi> moshi_;
  std::unique_ptr<State> state_;
};

}  // namespace kyutai
