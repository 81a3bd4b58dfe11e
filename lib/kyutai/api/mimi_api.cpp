#include "kyutai/mimi.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>

#include "kyutai/api/batch_scheduler.h"
#include "kyutai/api/mimi_access.h"
#include "kyutai/api/shared_cache.h"
#include "kyutai/device.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/model/mimi_model.h"
#include "kyutai/model/torch_errors.h"

namespace kyutai {

namespace {

at::Device parse_device(const std::string& device) {
  check_device(device);
  return at::Device(device);
}

MimiConfig config_or_default(const std::string& config) {
  return config.empty() ? MimiConfig::moshi_2024() : MimiConfig::from_file(config);
}

bool is_sane(float x) {
  return std::isfinite(x) && std::fabs(x) <= kMaxSampleMagnitude;
}

// The samples an encoder may see: `pcm` itself when every sample is sane, else a copy in
// `clean` with non-finite samples as 0 and the others clamped. Counts the changed samples.
const float* sanitize(const float* pcm, size_t samples, std::vector<float>* clean,
                      size_t* replaced) {
  *replaced = 0;
  if (std::all_of(pcm, pcm + samples, is_sane)) return pcm;
  clean->resize(samples);
  for (size_t i = 0; i < samples; ++i) {
    const float x = pcm[i];
    (*clean)[i] = std::isfinite(x) ? std::clamp(x, -kMaxSampleMagnitude, kMaxSampleMagnitude) : 0.f;
    *replaced += !is_sane(x);
  }
  return clean->data();
}

}  // namespace

// Batched encoders' frames, encoded together as a batched STT step encodes its audio.
class MimiEncodeBatcher : public Batcher<AudioIn> {
 public:
  explicit MimiEncodeBatcher(const MimiModel& model)
      : Batcher(
            [](std::vector<AudioIn>& rows) {
              std::vector<AudioIn*> audio;
              for (AudioIn& row : rows) audio.push_back(&row);
              encode_audio(audio);
            },
            model.device().is_cpu()) {}
};

Mimi::Mimi(std::unique_ptr<MimiModel> model) : model_(std::move(model)) {
  encode_batcher_ = std::make_unique<MimiEncodeBatcher>(*model_);
  const MimiConfig& c = model_->config();
  format_.sample_rate = c.sample_rate;
  format_.frame_size = c.frame_size();
  format_.frame_rate = c.frame_rate;
  format_.total_codebooks = c.quantizer.n_q;
  format_.cardinality = c.quantizer.bins;
}

Mimi::~Mimi() = default;

std::shared_ptr<const Mimi> Mimi::load(const std::string& weights, const std::string& config,
                                       const std::string& device, const LoadProgress& progress) {
  return translate_torch_errors([&] {
    auto model = std::make_unique<MimiModel>(config_or_default(config));
    model->load(weights, parse_device(device), progress);
    return std::shared_ptr<const Mimi>(new Mimi(std::move(model)));
  });
}

std::shared_ptr<const Mimi> Mimi::load_shared(const std::string& weights, const std::string& config,
                                              const std::string& device,
                                              const LoadProgress& progress) {
  const std::string key = canonical_path(weights) + '\n' + canonical_path(config) + '\n' + device;
  return SharedCache<Mimi>::get(key, [&] { return load(weights, config, device, progress); });
}

std::shared_ptr<const Mimi> Mimi::random(const std::string& config, uint64_t seed) {
  return translate_torch_errors([&] {
    auto model = std::make_unique<MimiModel>(config_or_default(config));
    model->init_random(seed, at::kCPU);
    return std::shared_ptr<const Mimi>(new Mimi(std::move(model)));
  });
}

void Mimi::save(const std::string& path) const {
  translate_torch_errors([&] { model_->save(path); });
}

std::vector<int64_t> Mimi::encode(const float* pcm, size_t samples, int num_codebooks,
                                  size_t* replaced) const {
  std::vector<float> clean;
  size_t changed = 0;
  pcm = sanitize(pcm, samples, &clean, &changed);
  if (replaced) *replaced = changed;
  return translate_torch_errors([&] {
    c10::InferenceMode guard;
    const at::Tensor audio =
        at::from_blob(const_cast<float*>(pcm), {1, 1, static_cast<int64_t>(samples)}, at::kFloat);
    const at::Tensor codes = model_->encode(audio, num_codebooks).to(at::kCPU).contiguous();
    return std::vector<int64_t>(codes.data_ptr<int64_t>(),
                                codes.data_ptr<int64_t>() + codes.numel());
  });
}

std::vector<float> Mimi::decode(const int64_t* codes, int num_codebooks, int64_t frames) const {
  return translate_torch_errors([&] {
    c10::InferenceMode guard;
    const at::Tensor c =
        at::from_blob(const_cast<int64_t*>(codes), {1, num_codebooks, frames}, at::kLong);
    const at::Tensor audio = model_->decode(c).to(at::kCPU).contiguous();
    return std::vector<float>(audio.data_ptr<float>(), audio.data_ptr<float>() + audio.numel());
  });
}

MimiEncoder::MimiEncoder(std::shared_ptr<const Mimi> mimi, int num_codebooks, BatchOptions batch)
    : mimi_(std::move(mimi)), num_codebooks_(num_codebooks) {
  state_ = std::make_unique<State>(State{mimi_->model().new_encoder_state(num_codebooks), batch});
  if (batch.enabled) state_->member = mimi_->encode_batcher_->join();
}

MimiEncoder::~MimiEncoder() {
  if (state_->batch.enabled) mimi_->encode_batcher_->leave(state_->member);
}

int MimiEncoder::last_batch_size() const {
  return state_->last_batch_size;
}

namespace {

void check_frame_size(const Mimi& mimi, size_t samples) {
  if (samples != static_cast<size_t>(mimi.format().frame_size))
    throw InputError("a streaming encode takes exactly one frame of " +
                     std::to_string(mimi.format().frame_size) + " samples, got " +
                     std::to_string(samples));
}

}  // namespace

at::Tensor MimiEncoderAccess::frame(const MimiEncoder& e, const float* pcm, size_t samples) {
  check_frame_size(e.mimi(), samples);
  std::vector<float> clean;
  size_t replaced = 0;
  pcm = sanitize(pcm, samples, &clean, &replaced);
  return at::from_blob(const_cast<float*>(pcm), {1, 1, static_cast<int64_t>(samples)}, at::kFloat)
      .clone();
}

size_t MimiEncoder::encode_frame(const float* pcm, size_t samples, int64_t* codes) {
  // Checked here, before the frame can join a batch: one stream's bad frame fails only itself.
  check_frame_size(*mimi_, samples);
  std::vector<float> clean;
  size_t replaced = 0;
  pcm = sanitize(pcm, samples, &clean, &replaced);
  translate_torch_errors([&] {
    c10::InferenceMode guard;
    const at::Tensor frame =
        at::from_blob(const_cast<float*>(pcm), {1, 1, static_cast<int64_t>(samples)}, at::kFloat);
    if (state_->batch.enabled) {
      StepTiming timing;
      std::vector<int64_t> out(static_cast<size_t>(num_codebooks_));
      mimi_->encode_batcher_->step(state_->member,
                                   AudioIn{&mimi_->model(), frame, &state_->stream, &out},
                                   state_->batch.max_wait_ms, &timing);
      std::copy(out.begin(), out.end(), codes);
      state_->last_batch_size = timing.batch_size;
      return;
    }
    const at::Tensor out =
        mimi_->model().encode_step(frame, state_->stream).to(at::kCPU).contiguous();
    std::copy_n(out.data_ptr<int64_t>(), num_codebooks_, codes);
  });
  return replaced;
}

void MimiEncoder::reset() {
  state_->stream = mimi_->model().new_encoder_state(num_codebooks_);
}

struct MimiDecoder::State {
  MimiDecoderState stream;
};

MimiDecoder::MimiDecoder(std::shared_ptr<const Mimi> mimi)
    : mimi_(std::move(mimi)), state_(std::make_unique<State>()) {}

MimiDecoder::~MimiDecoder() = default;

void MimiDecoder::decode_frame(const int64_t* codes, int num_codebooks, float* pcm) {
  translate_torch_errors([&] {
    c10::InferenceMode guard;
    const at::Tensor c =
        at::from_blob(const_cast<int64_t*>(codes), {1, num_codebooks, 1}, at::kLong);
    const at::Tensor out = mimi_->model().decode_step(c, state_->stream).to(at::kCPU).contiguous();
    std::copy_n(out.data_ptr<float>(), out.numel(), pcm);
  });
}

void MimiDecoder::reset() {
  state_->stream = mimi_->model().new_decoder_state();
}

}  // namespace kyutai
