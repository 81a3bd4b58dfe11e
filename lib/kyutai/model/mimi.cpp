#include "kyutai/model/mimi_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <map>

#include "kyutai/error.h"
#include "kyutai/safetensors.h"

namespace kyutai {

namespace {

Conv1dOptions resample_options(const MimiConfig& c, bool channel_wise) {
  Conv1dOptions o;
  o.in = o.out = c.seanet.dimension;
  o.kernel = 2 * c.resample_stride();
  o.stride = c.resample_stride();
  o.groups = channel_wise ? c.seanet.dimension : 1;
  o.bias = false;
  o.replicate = true;
  return o;
}

}  // namespace

MimiModel::MimiModel(const MimiConfig& config)
    : config_(config),
      encoder_(config.seanet),
      decoder_(config.seanet),
      encoder_transformer_(config.transformer),
      decoder_transformer_(config.transformer),
      quantizer_(config.quantizer) {
  config_.validate("Mimi configuration");
  if (config.resample_stride() > 1) {
    downsample_.emplace(resample_options(config, false));
    // The reference keeps the upsampler depthwise (upsample_channel_wise_bug=True).
    upsample_.emplace(resample_options(config, true));
  }
  Params p(&params_);
  encoder_.declare(p.sub("encoder"));
  decoder_.declare(p.sub("decoder"));
  encoder_transformer_.declare(p.sub("encoder_transformer").sub("transformer"));
  decoder_transformer_.declare(p.sub("decoder_transformer").sub("transformer"));
  quantizer_.declare(p.sub("quantizer"));
  if (downsample_) downsample_->declare(p.sub("downsample").sub("conv"));
  if (upsample_) upsample_->declare(p.sub("upsample").sub("convtr"));
}

void MimiModel::load(const std::string& path, const at::Device& device,
                     const LoadProgress& progress) {
  c10::InferenceMode guard;
  load_strict(params_, SafetensorsFile::open(path), device, pack_weights(WeightFormat::Float32),
              progress);
  device_ = device;
  prepare();
}

void MimiModel::init_random(uint64_t seed, const at::Device& device) {
  c10::InferenceMode guard;
  kyutai::init_random(params_, seed, device, pack_weights(WeightFormat::Float32));
  device_ = device;
  prepare();
}

void MimiModel::save(const std::string& path) const {
  std::map<std::string, at::Tensor> tensors;
  // Transposed convolutions keep their weight as a view of a re-laid-out copy; contiguous()
  // restores the reference layout.
  for (const auto& spec : params_) tensors[spec.name] = spec.slot->contiguous();
  write_tensors(path, tensors);
}

void MimiModel::prepare() {
  encoder_.prepare();
  if (downsample_) downsample_->prepare();
  quantizer_.prepare();
  decoder_.prepare();
  if (upsample_) upsample_->prepare();
}

void MimiModel::check_num_codebooks(int n) const {
  if (n < 1 || n > total_codebooks())
    throw InputError("number of codebooks must be between 1 and " +
                     std::to_string(total_codebooks()) + ", got " + std::to_string(n));
}

at::Tensor MimiModel::transformer(const StreamingTransformer& t, const at::Tensor& x,
                                  std::optional<TransformerState>* state) const {
  const at::Tensor seq = x.transpose(1, 2);  // [B, T, C]
  if (!state) return t.forward(seq).transpose(1, 2);
  if (!*state) state->emplace(t.init_state(seq.size(0), seq.options()));
  return t.step(seq, **state).transpose(1, 2);
}

at::Tensor MimiModel::encode(const at::Tensor& audio, int num_codebooks, MimiTrace* trace) const {
  c10::InferenceMode guard;
  check_num_codebooks(num_codebooks);
  if (audio.dim() != 3 || audio.size(1) != 1)
    throw InputError("audio must be [batch, 1, samples], got " +
                     shape_to_string(audio.sizes().vec()));
  const int64_t frame = frame_size(), length = audio.size(2);
  const int64_t padded = std::max<int64_t>(1, (length + frame - 1) / frame) * frame;
  at::Tensor x = at::constant_pad_nd(audio.to(device_, at::kFloat), {0, padded - length});
  at::Tensor emb = encoder_.forward(x);
  if (trace) trace->seanet = emb;
  emb = transformer(encoder_transformer_, emb, nullptr);
  if (trace) trace->transformer = emb;
  if (downsample_) emb = downsample_->forward(emb);
  if (trace) trace->latent = emb;
  return quantizer_.encode(emb, num_codebooks);
}

at::Tensor MimiModel::decode_latent(const at::Tensor& codes) const {
  c10::InferenceMode guard;
  return quantizer_.decode(codes.to(device_, at::kLong));
}

at::Tensor MimiModel::decode(const at::Tensor& codes, MimiTrace* trace) const {
  c10::InferenceMode guard;
  at::Tensor emb = decode_latent(codes);
  if (upsample_) emb = upsample_->forward(emb);
  if (trace) trace->latent = emb;
  emb = transformer(decoder_transformer_, emb, nullptr);
  if (trace) trace->transformer = emb;
  return decoder_.forward(emb);
}

MimiEncoderState MimiModel::new_encoder_state(int num_codebooks) const {
  check_num_codebooks(num_codebooks);
  MimiEncoderState state;
  state.num_codebooks = num_codebooks;
  return state;
}

at::Tensor MimiModel::transformer(const StreamingTransformer& t, const at::Tensor& x,
                                  const std::vector<std::optional<TransformerState>*>& rows) const {
  const at::Tensor seq = x.transpose(1, 2);  // [N, T, C]
  std::vector<TransformerState*> states;
  for (std::optional<TransformerState>* row : rows) {
    if (!*row) row->emplace(t.init_state(1, seq.options()));
    states.push_back(&**row);
  }
  return t.step(seq, states).transpose(1, 2);
}

at::Tensor MimiModel::check_frame(const at::Tensor& frame) const {
  if (frame.dim() != 3 || frame.size(1) != 1 || frame.size(2) != frame_size())
    throw InputError("a streaming encode takes exactly one frame of " +
                     std::to_string(frame_size()) + " samples as [batch, 1, " +
                     std::to_string(frame_size()) + "], got " +
                     shape_to_string(frame.sizes().vec()));
  return frame.to(device_, at::kFloat);
}

at::Tensor MimiModel::encode_step(const at::Tensor& frames,
                                  const std::vector<MimiEncoderState*>& states) const {
  if (states.size() == 1) return encode_step(frames, *states[0]);
  c10::InferenceMode guard;
  const at::Tensor x = check_frame(frames);
  if (x.size(0) != static_cast<int64_t>(states.size()))
    throw InputError("an encode of " + std::to_string(states.size()) + " streams got " +
                     std::to_string(x.size(0)) + " frames");
  std::vector<SeanetState*> seanet;
  std::vector<std::optional<TransformerState>*> transformers;
  std::vector<ConvState*> downsample;
  int num_codebooks = 0;
  for (MimiEncoderState* s : states) {
    seanet.push_back(&s->seanet);
    transformers.push_back(&s->transformer);
    downsample.push_back(&s->downsample);
    num_codebooks = std::max(num_codebooks, s->num_codebooks);
  }
  at::Tensor emb = transformer(encoder_transformer_, encoder_.step(x, seanet), transformers);
  if (downsample_) {
    for (ConvState* s : downsample)
      if (!s->previous.defined()) *s = downsample_->init_state(1, emb.options());
    emb = downsample_->step(emb, downsample);
  }
  return quantizer_.encode(emb, num_codebooks);
}

at::Tensor MimiModel::encode_step(const at::Tensor& frame, MimiEncoderState& state,
                                  MimiTrace* trace) const {
  c10::InferenceMode guard;
  const at::Tensor x = check_frame(frame);
  at::Tensor emb = encoder_.step(x, state.seanet);
  if (trace) trace->seanet = emb;
  emb = transformer(encoder_transformer_, emb, &state.transformer);
  if (trace) trace->transformer = emb;
  if (downsample_) {
    if (!state.downsample.previous.defined())
      state.downsample = downsample_->init_state(emb.size(0), emb.options());
    emb = downsample_->step(emb, state.downsample);
  }
  if (trace) trace->latent = emb;
  return quantizer_.encode(emb, state.num_codebooks);
}

MimiDecoderState MimiModel::new_decoder_state() const {
  return MimiDecoderState();
}

at::Tensor MimiModel::decode_step(const at::Tensor& codes, MimiDecoderState& state,
                                  MimiTrace* trace) const {
  c10::InferenceMode guard;
  if (codes.dim() != 3 || codes.size(2) != 1)
    throw InputError("a streaming decode takes one frame of codes as [batch, codebooks, 1], got " +
                     shape_to_string(codes.sizes().vec()));
  at::Tensor emb = decode_latent(codes);
  if (upsample_) {
    if (!state.upsample.partial.defined())
      state.upsample = upsample_->init_state(emb.size(0), emb.options());
    emb = upsample_->step(emb, state.upsample);
  }
  if (trace) trace->latent = emb;
  emb = transformer(decoder_transformer_, emb, &state.transformer);
  if (trace) trace->transformer = emb;
  return decoder_.step(emb, state.seanet);
}

}  // namespace kyutai
