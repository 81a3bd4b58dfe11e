// Public, torch-free interface to the Moshi language model, for the GStreamer elements and the
// tools. A Moshi object holds the immutable weights and the text tokenizer and can be shared by
// many conversations; each MoshiConversation has its own state (KV cache, token history, RNG).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kyutai/batch.h"
#include "kyutai/hub.h"
#include "kyutai/progress.h"
#include "kyutai/sampling.h"
#include "kyutai/text.h"
#include "kyutai/weights.h"

namespace kyutai {

class LmModel;
class BatchScheduler;

// How a conversation's steps went, measured by the library (as llama.cpp's llama_perf_context):
// the elements and the gateway read it and never time steps themselves. A step's time is its
// wait for the other conversations plus the (batched) step itself (Step::wait_ms + step_ms).
struct StepStats {
  // The histogram's buckets: upper bounds in ms (a Prometheus histogram's `le`), from 1 ms to
  // 1.28 s around the 80 ms frame; one more bucket counts the slower steps.
  static constexpr std::array<double, 11> kBucketBoundsMs = {1,  2.5, 5,   10,  20,  40,
                                                             80, 160, 320, 640, 1280};
  static constexpr size_t kWindow = 256;  // steps the window figures run over

  // Since the conversation began or was reset:
  uint64_t steps = 0;
  double total_ms = 0;  // all step times together
  double max_ms = 0;
  std::array<uint64_t, kBucketBoundsMs.size() + 1> histogram{};  // steps per bucket
  // Over the last kWindow steps (or fewer):
  double median_ms = 0;
  double p90_ms = 0;
  double real_time_factor = 0;  // median_ms over the frame duration; above 1 it falls behind
  int last_batch = 0;           // conversations in the last step, this one included
  double mean_batch = 0;
  double mean_wait_ms = 0;  // waiting for the others, part of the step time
  double max_wait_ms = 0;
};

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
  // Loads the LM and its tokenizer onto `device` ("cpu", "cuda", "cuda:N") with its matrix
  // weights in `weights` (Auto is resolved for the device by resolve_weight_format; the
  // quantized formats go through `cache`, CPU only), telling `progress` the fraction of the
  // weights loaded as tensors come in. Throws NotFoundError, FormatError, CheckpointError,
  // ConfigError (also when the tokenizer's size is not the model's text_card).
  static std::shared_ptr<const Moshi> load(const MoshiFiles& files,
                                           const std::string& device = "cpu",
                                           WeightFormat weights = WeightFormat::Float32,
                                           const WeightCacheOptions& cache = {},
                                           const LoadProgress& progress = {});
  // As load, but shares the copy already loaded in this process for the same files, device and
  // resolved weight format (without calling `progress`).
  static std::shared_ptr<const Moshi> load_shared(const MoshiFiles& files,
                                                  const std::string& device = "cpu",
                                                  WeightFormat weights = WeightFormat::Float32,
                                                  const WeightCacheOptions& cache = {},
                                                  const LoadProgress& progress = {});
  // Random weights on the CPU for a configuration file (benchmarks); `tokenizer` may be empty.
  static std::shared_ptr<const Moshi> random(const std::string& config, uint64_t seed,
                                             WeightFormat weights = WeightFormat::Float32,
                                             const std::string& tokenizer = "");
  ~Moshi();
  // Writes the LM weights as a safetensors file with the reference's key names.
  void save_weights(const std::string& path) const;

  const MoshiFormat& format() const { return format_; }
  // The format the matrix weights are in: never Auto.
  WeightFormat weight_format() const;
  const LmModel& model() const { return *model_; }
  // Null for a model made by random() without a tokenizer.
  const std::shared_ptr<const TextTokenizer>& tokenizer() const { return tokenizer_; }
 private:
  friend class MoshiConversation;
  // The scheduler that batches this model's conversations, made on first use. Thread-safe.
  std::shared_ptr<BatchScheduler> scheduler() const;

  Moshi(std::unique_ptr<LmModel> model, std::shared_ptr<const TextTokenizer> tokenizer);
  std::unique_ptr<LmModel> model_;
  std::shared_ptr<const TextTokenizer> tokenizer_;
  MoshiFormat format_;
  struct Batching;  // the scheduler and its lock: not part of the immutable model
  std::unique_ptr<Batching> batching_;
};

// One conversation: one step per 80 ms frame of the user's audio codes.
class MoshiConversation {
 public:
  struct Step {
    bool ready = false;  // false during the first max_delay steps
    int64_t text_token = -1;
    std::vector<int64_t> audio;  // model_codebooks codes of Moshi's voice
    std::string text;            // text this step completes (padding gives none), valid UTF-8
    int batch_size = 1;          // conversations stepped together, this one included
    double wait_ms = 0;          // waiting for the others
    double step_ms = 0;          // the (batched) step itself
  };

  // With `batch.enabled`, steps go through the Moshi object's scheduler, together with its
  // other batched conversations in other threads; step() blocks until this one's is done.
  // `kv`: how this conversation's KV cache stores keys and values (Int8: CPU only).
  MoshiConversation(std::shared_ptr<const Moshi> moshi, uint64_t seed, BatchOptions batch = {},
                    KvCacheFormat kv = KvCacheFormat::Model);
  ~MoshiConversation();
  // `count` >= user_codebooks codes, the first ones used. Throws InputError on bad codes.
  Step step(const int64_t* user_codes, int count, const SamplingParams& params);
  // Starts a new conversation with a new seed.
  void reset(uint64_t seed);
  // Text still held at the end of a conversation (an unfinished UTF-8 character, as U+FFFD).
  std::string flush_text();
  int64_t steps() const;
  const Moshi& moshi() const { return *moshi_; }
  const BatchOptions& batch_options() const { return batch_; }
  // The steps so far; from any thread.
  StepStats stats() const;
  // The duration of a frame, for the real-time factor: Mimi's 80 ms unless told otherwise.
  // From any thread.
  void set_frame_ms(double frame_ms);

 private:
  struct State;
  std::shared_ptr<const Moshi> moshi_;
  BatchOptions batch_;
  std::unique_ptr<State> state_;  // the steps (alone or through the scheduler) and the text
};

}  // namespace kyutai
