// Public, torch-free interface to Kyutai's streaming speech-to-text models ("delayed streams
// modeling": kyutai/stt-1b-en_fr, kyutai/stt-2.6b-en). They are Moshi's temporal transformer
// without a depformer: each 80 ms frame of Mimi codes (all levels) in, one text token out, the
// text `delay` frames behind the audio, plus optional voice-activity heads. An Stt object holds
// the immutable weights and is shared by many streams; each SttStream has its own state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kyutai/hub.h"
#include "kyutai/mimi.h"
#include "kyutai/moshi.h"
#include "kyutai/progress.h"
#include "kyutai/text.h"
#include "kyutai/weights.h"

namespace kyutai {

class LmModel;
struct AudioIn;

struct SttFormat {
  int codebooks = 0;        // Mimi codebooks read per frame (32 for Kyutai's models)
  int cardinality = 0;      // audio codes are in [0, cardinality)
  int text_card = 0;        // text tokens written are in [0, text_card) (text_card_out)
  double frame_rate = 12.5;
  // From config.json's stt_config: how far the text lags the audio, and the silence the
  // reference puts before the audio. In frames, rounded up as the reference rounds them.
  double delay_s = 0;
  double silence_prefix_s = 0;
  int delay_frames = 0;           // frames of silence to push at the end so the last words come
  int silence_prefix_frames = 0;  // frames of silence to push before the first audio frame
  int vad_heads = 0;              // voice-activity heads (0 when the model has none)
  int context = 0;                // frames the transformer attends to
};

// A word as the reference's timestamp rule cuts it: the text between two word boundaries,
// times in seconds of the user's audio (0: its first sample, after the silence prefix).
struct SttWord {
  std::string text;
  double start_s = 0;
  double end_s = 0;
};

class Stt {
 public:
  // As Moshi::load, for a repository or config.json whose model_type is "stt". Throws
  // ConfigError for a config it cannot run (not an STT model, a depformer, missing
  // stt_config), and the errors Moshi::load throws.
  static std::shared_ptr<const Stt> load(const MoshiFiles& files,
                                         const std::string& device = "cpu",
                                         WeightFormat weights = WeightFormat::Auto,
                                         const WeightCacheOptions& cache = {},
                                         const LoadProgress& progress = {});
  // As load, but shares the copy already loaded in this process for the same files, device and
  // resolved weight format (without calling `progress`), as Moshi::load_shared does.
  static std::shared_ptr<const Stt> load_shared(const MoshiFiles& files,
                                                const std::string& device = "cpu",
                                                WeightFormat weights = WeightFormat::Auto,
                                                const WeightCacheOptions& cache = {},
                                                const LoadProgress& progress = {});
  // Random weights for a configuration file (benchmarks, tests); `tokenizer` may be empty.
  static std::shared_ptr<const Stt> random(const std::string& config, uint64_t seed,
                                           WeightFormat weights = WeightFormat::Float32,
                                           const std::string& tokenizer = "");
  ~Stt();

  const SttFormat& format() const;
  WeightFormat weight_format() const;  // never Auto
  const LmModel& model() const;
  const std::shared_ptr<const TextTokenizer>& tokenizer() const;

 private:
  friend class SttStream;
  struct Impl;
  explicit Stt(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One stream of audio being transcribed: one step per 80 ms frame of Mimi codes. The caller
// pushes format().silence_prefix_frames frames of encoded silence first, and
// format().delay_frames frames of encoded silence at the end, then calls finish(); the word
// times already account for both.
class SttStream {
 public:
  struct Step {
    int64_t text_token = -1;  // greedy (temperature 0) unless told otherwise
    // Probability of no voice activity over the next 0.5, 1, 2 and 3 s (softmax of each
    // extra head, class 0); empty when the model has no heads.
    std::vector<float> vad;
    std::vector<SttWord> words;  // words this step completed, in order
    int batch_size = 1;
    double wait_ms = 0;
    double step_ms = 0;  // the (batched) step, with the Mimi encode when given audio
  };

  SttStream(std::shared_ptr<const Stt> stt, BatchOptions batch = {},
            KvCacheFormat kv = KvCacheFormat::Model);
  ~SttStream();
  // `count` >= format().codebooks codes, the first ones used. Throws InputError on bad codes.
  Step step(const int64_t* codes, int count, const SamplingParams& params = greedy());
  // One frame of audio (exactly `encoder.mimi().format().frame_size` samples, checked and
  // sanitized as MimiEncoder::encode_frame does) through `encoder`'s stream and the step. When
  // batched, the frames of the batch are encoded together just before the step, in the same
  // batch with one wait: a stream never waits for the others twice (once at an encode, once at
  // the step), and streams that step together also encode together. `encoder` (not batched
  // itself, at least format().codebooks codebooks) must not be used elsewhere meanwhile.
  Step step(MimiEncoder& encoder, const float* pcm, size_t samples,
            const SamplingParams& params = greedy());
  // End of stream: the words of the last segment, ended cleanly (docs/STT.md): at the
  // tokenizer's end-of-sentence token if one follows the last boundary, else at the end of the
  // stream but at most a second after the segment's start. The stream can then be reset().
  std::vector<SttWord> finish();
  void reset();
  int64_t steps() const;
  StepStats stats() const;  // from any thread
  const Stt& stt() const;

  static SamplingParams greedy();

 private:
  struct State;
  Step step_codes(const std::vector<int64_t>& codes, const SamplingParams& params, AudioIn* audio);
  std::unique_ptr<State> state_;
};

}  // namespace kyutai
