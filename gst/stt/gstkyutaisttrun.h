// One stream of kyutaisttcore: audio at Mimi's rate in, 80 ms frames through the Mimi encoder
// and the STT step, with the silence the model expects before the audio and after it.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kyutai/mimi.h"
#include "kyutai/stt.h"

class GstKyutaiSttRun {
 public:
  // What each step gives, with the user's audio stepped so far, in samples (the silence prefix
  // not counted; during the final silence, the whole audio). Returns false to stop.
  using OnStep = std::function<bool(const kyutai::SttStream::Step& step, uint64_t audio_samples)>;

  // Throws the library's errors (the Mimi model lacks the codebooks the STT model reads, an
  // int8 cache on a GPU).
  GstKyutaiSttRun(std::shared_ptr<const kyutai::Mimi> mimi, std::shared_ptr<const kyutai::Stt> stt,
                  const kyutai::BatchOptions& batch,
                  kyutai::KvCacheFormat kv = kyutai::KvCacheFormat::Model);

  // Feeds mono samples; each whole frame makes one step. The first call of a stream first
  // steps format().silence_prefix_frames frames of silence. Returns false when `on_step` did.
  bool push(const float* samples, size_t count, const OnStep& on_step);
  // Feeds `count` samples of silence, as push() (a GAP in the input).
  bool push_silence(uint64_t count, const OnStep& on_step);
  // End of stream: the last partial frame padded with zeros, format().delay_frames frames of
  // silence, then the words SttStream::finish() still held. The run is then reset.
  std::vector<kyutai::SttWord> drain(const OnStep& on_step);
  // Forgets the stream: the next push() begins a new one.
  void reset();

  bool started() const { return started_; }
  uint64_t audio_samples() const { return audio_samples_; }
  const kyutai::SttFormat& format() const { return stt_->format(); }
  const kyutai::MimiFormat& mimi_format() const { return mimi_->format(); }
  kyutai::StepStats stats() const { return stream_.stats(); }

 private:
  bool start(const OnStep& on_step);
  bool step_frame(const float* frame, const OnStep& on_step);
  bool step_silence(int frames, const OnStep& on_step);

  std::shared_ptr<const kyutai::Mimi> mimi_;
  std::shared_ptr<const kyutai::Stt> stt_;
  kyutai::MimiEncoder encoder_;
  kyutai::SttStream stream_;
  std::vector<float> pending_;  // the samples of a partial frame
  bool started_ = false;
  uint64_t audio_samples_ = 0;  // user samples in whole frames stepped
  uint64_t tail_samples_ = 0;   // user samples of the partial frame at drain
};
