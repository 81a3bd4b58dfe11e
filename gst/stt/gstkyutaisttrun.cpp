#include "gstkyutaisttrun.h"

#include <algorithm>
#include <string>

#include "kyutai/error.h"

GstKyutaiSttRun::GstKyutaiSttRun(std::shared_ptr<const kyutai::Mimi> mimi,
                                 std::shared_ptr<const kyutai::Stt> stt,
                                 const kyutai::BatchOptions& batch, kyutai::KvCacheFormat kv)
    : mimi_(std::move(mimi)),
      stt_(std::move(stt)),
      encoder_(mimi_, stt_->format().codebooks),
      stream_(stt_, batch, kv) {
  pending_.reserve(mimi_->format().frame_size);
}

bool GstKyutaiSttRun::step_frame(const float* frame, const OnStep& on_step) {
  // The encode runs inside the (batched) step: one batch, one wait.
  const kyutai::SttStream::Step step = stream_.step(encoder_, frame, mimi_->format().frame_size);
  return on_step(step, audio_samples_ + tail_samples_);
}

bool GstKyutaiSttRun::step_silence(int frames, const OnStep& on_step) {
  const std::vector<float> silence(mimi_->format().frame_size, 0.0f);
  for (int i = 0; i < frames; ++i)
    if (!step_frame(silence.data(), on_step)) return false;
  return true;
}

bool GstKyutaiSttRun::start(const OnStep& on_step) {
  started_ = true;
  return step_silence(stt_->format().silence_prefix_frames, on_step);
}

bool GstKyutaiSttRun::push(const float* samples, size_t count, const OnStep& on_step) {
  if (!started_ && !start(on_step)) return false;
  const size_t frame = mimi_->format().frame_size;
  while (count > 0) {
    const size_t n = std::min(count, frame - pending_.size());
    pending_.insert(pending_.end(), samples, samples + n);
    samples += n;
    count -= n;
    if (pending_.size() < frame) break;
    audio_samples_ += frame;
    const bool go_on = step_frame(pending_.data(), on_step);
    pending_.clear();
    if (!go_on) return false;
  }
  return true;
}

bool GstKyutaiSttRun::push_silence(uint64_t count, const OnStep& on_step) {
  const std::vector<float> silence(mimi_->format().frame_size, 0.0f);
  while (count > 0) {
    const uint64_t n = std::min<uint64_t>(count, silence.size());
    if (!push(silence.data(), n, on_step)) return false;
    count -= n;
  }
  return true;
}

std::vector<kyutai::SttWord> GstKyutaiSttRun::drain(const OnStep& on_step) {
  std::vector<kyutai::SttWord> words;
  if (!started_) return words;
  bool go_on = true;
  if (!pending_.empty()) {  // the reference pads the audio with zeros to whole frames
    tail_samples_ = pending_.size();
    pending_.resize(mimi_->format().frame_size, 0.0f);
    go_on = step_frame(pending_.data(), on_step);
  }
  if (go_on && step_silence(stt_->format().delay_frames, on_step)) words = stream_.finish();
  reset();
  return words;
}

void GstKyutaiSttRun::reset() {
  encoder_.reset();
  stream_.reset();
  pending_.clear();
  started_ = false;
  audio_samples_ = 0;
  tail_samples_ = 0;
}
