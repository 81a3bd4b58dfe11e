// Public, torch-free interface to the Mimi codec, for the GStreamer elements and the tools.
//
// A Mimi object holds the immutable weights and can be shared by any number of streams; each
// MimiEncoder / MimiDecoder is one stream with its own state. Errors are kyutai::Error subclasses
// (error.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kyutai/batch.h"
#include "kyutai/progress.h"

namespace kyutai {

class MimiModel;
class MimiEncodeBatcher;
struct MimiEncoderAccess;

struct MimiFormat {
  int sample_rate = 0;
  int frame_size = 0;  // samples per frame
  double frame_rate = 0;
  int total_codebooks = 0;
  int cardinality = 0;  // codes are in [0, cardinality)
};

// The number of codebooks Moshi's models use, and the reference's default.
inline constexpr int kDefaultNumCodebooks = 8;

// The encoders' input bound. Float audio is nominally in [-1, 1]; this keeps 60 dB of headroom
// and every activation finite. A NaN, an infinity or an absurd sample (1e30) would otherwise
// enter the attention cache and spoil every code for the whole context (250 frames, 20 s).
inline constexpr float kMaxSampleMagnitude = 1e3f;

class Mimi {
 public:
  // Loads `weights` with the configuration file `config` (empty: the released Mimi) onto
  // `device` ("cpu", "cuda", "cuda:1"), telling `progress` the fraction loaded as tensors come
  // in. Throws NotFoundError, FormatError, CheckpointError, ConfigError.
  static std::shared_ptr<const Mimi> load(const std::string& weights, const std::string& config,
                                          const std::string& device = "cpu",
                                          const LoadProgress& progress = {});
  // As load, but returns the copy already loaded in this process for the same files and device
  // when there is one (without calling `progress`), so elements using one model share its
  // weights.
  static std::shared_ptr<const Mimi> load_shared(const std::string& weights,
                                                 const std::string& config,
                                                 const std::string& device = "cpu",
                                                 const LoadProgress& progress = {});
  // A model with random weights (benchmarks, tests).
  static std::shared_ptr<const Mimi> random(const std::string& config, uint64_t seed);
  // Writes the weights as a safetensors file with the reference's key names.
  void save(const std::string& path) const;
  ~Mimi();

  const MimiFormat& format() const { return format_; }
  const MimiModel& model() const { return *model_; }

  // Whole signal: mono samples -> codes, codebook-major ([num_codebooks][frames]). The input is
  // padded with zeros to whole frames. Non-finite samples are encoded as 0 and others clamped
  // to +-kMaxSampleMagnitude; `replaced` (optional) receives how many were changed.
  std::vector<int64_t> encode(const float* pcm, size_t samples, int num_codebooks,
                              size_t* replaced = nullptr) const;
  // Codes [num_codebooks][frames] -> frames * frame_size samples.
  std::vector<float> decode(const int64_t* codes, int num_codebooks, int64_t frames) const;

 private:
  friend class MimiEncoder;
  explicit Mimi(std::unique_ptr<MimiModel> model);
  std::unique_ptr<MimiModel> model_;
  MimiFormat format_;
  // The batched encoders' scheduler: not part of the immutable model.
  std::unique_ptr<MimiEncodeBatcher> encode_batcher_;
};

// One encoding stream: exactly one frame of audio in, one code per active codebook out. With
// `batch` enabled, the frames of the Mimi object's batched encoders that arrive together are
// encoded in one pass over the weights: 4 streams of 32 codebooks take about 2.3 times one on a
// 2-core machine, not 4 times. Each stream's encoding is what it gets alone to float rounding
// (a stream's columns go through one matrix product with the others' instead of through its
// own), so its codes are too, except where two codebook entries are within rounding of each
// other.
class MimiEncoder {
 public:
  MimiEncoder(std::shared_ptr<const Mimi> mimi, int num_codebooks, BatchOptions batch = {});
  ~MimiEncoder();
  MimiEncoder(const MimiEncoder&) = delete;
  MimiEncoder& operator=(const MimiEncoder&) = delete;
  // `samples` must equal format().frame_size; writes num_codebooks() codes. Non-finite samples
  // are encoded as 0 and others clamped to +-kMaxSampleMagnitude, so they never reach the
  // stream's state; returns how many were changed (0 for any sane audio).
  size_t encode_frame(const float* pcm, size_t samples, int64_t* codes);
  void reset();
  int num_codebooks() const { return num_codebooks_; }
  const Mimi& mimi() const { return *mimi_; }
  // Streams encoded together with the last frame, this one included (1 when not batched).
  int last_batch_size() const;

 private:
  friend struct MimiEncoderAccess;  // SttStream encodes inside its own batched step
  struct State;
  std::shared_ptr<const Mimi> mimi_;
  int num_codebooks_;
  std::unique_ptr<State> state_;
};

// One decoding stream: one frame of codes in, frame_size samples out.
class MimiDecoder {
 public:
  explicit MimiDecoder(std::shared_ptr<const Mimi> mimi);
  ~MimiDecoder();
  // `num_codebooks` codes in [1, total_codebooks]; writes format().frame_size samples.
  void decode_frame(const int64_t* codes, int num_codebooks, float* pcm);
  void reset();
  const Mimi& mimi() const { return *mimi_; }

 private:
  struct State;
  std::shared_ptr<const Mimi> mimi_;
  std::unique_ptr<State> state_;
};

}  // namespace kyutai
