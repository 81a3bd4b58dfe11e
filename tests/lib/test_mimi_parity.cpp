// Parity of the C++ Mimi with the reference on the golden mimi_tiny set: every intermediate
// tensor of the whole-signal and streaming paths, the codes, and the decoded audio.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>

#include "kyutai/model/mimi_model.h"
#include "test_util.h"

namespace kyutai {
namespace {

using test::close_rel;
using test::data_path;
using test::equal_codes;

constexpr double kTol = 1e-5;

class MimiParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new MimiModel(MimiConfig::from_file(data_path("golden/mimi_tiny/config.json")));
    model_->load(data_path("golden/mimi_tiny/model.safetensors"), test::device());
    // Inputs go to the model's device; close_rel compares on the CPU.
    io_ = new std::map<std::string, at::Tensor>(
        read_tensors(data_path("golden/mimi_tiny/io.safetensors")));
    for (auto& [name, t] : *io_) t = t.to(test::device());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete io_;
  }
  static const at::Tensor& io(const std::string& name) { return io_->at(name); }
  static MimiModel* model_;
  static std::map<std::string, at::Tensor>* io_;
};
MimiModel* MimiParity::model_ = nullptr;
std::map<std::string, at::Tensor>* MimiParity::io_ = nullptr;

TEST_F(MimiParity, BatchEncodeStages) {
  MimiTrace trace;
  const at::Tensor codes = model_->encode(io("audio"), 8, &trace);
  EXPECT_TRUE(close_rel(trace.seanet, io("enc_seanet"), kTol));
  EXPECT_TRUE(close_rel(trace.transformer, io("enc_transformer"), kTol));
  EXPECT_TRUE(close_rel(trace.latent, io("latent"), kTol));
  EXPECT_TRUE(
      close_rel(model_->quantizer().first().project_in(io("latent")), io("q_in_first"), kTol));
  EXPECT_TRUE(
      close_rel(model_->quantizer().rest().project_in(io("latent")), io("q_in_rest"), kTol));
  EXPECT_TRUE(equal_codes(codes, io("codes_batch")));
}

TEST_F(MimiParity, CodebooksApplyTheUsageClamp) {
  const at::Tensor tables =
      at::cat({model_->quantizer().first().codebooks(), model_->quantizer().rest().codebooks()});
  EXPECT_TRUE(close_rel(tables, io("codebooks"), kTol));
}

TEST_F(MimiParity, BatchDecodeStages) {
  MimiTrace trace;
  EXPECT_TRUE(close_rel(model_->decode_latent(io("codes_batch")), io("latent_q"), kTol));
  const at::Tensor audio = model_->decode(io("codes_batch"), &trace);
  EXPECT_TRUE(close_rel(trace.latent, io("latent_up"), kTol));
  EXPECT_TRUE(close_rel(trace.transformer, io("dec_transformer"), kTol));
  EXPECT_TRUE(close_rel(audio, io("audio_batch"), kTol));
}

TEST_F(MimiParity, FewerCodebooks) {
  const at::Tensor codes = model_->encode(io("audio"), 4);
  EXPECT_TRUE(equal_codes(codes, io("codes_nq4")));
  EXPECT_TRUE(close_rel(model_->decode(io("codes_nq4")), io("audio_nq4"), kTol));
}

TEST_F(MimiParity, StreamingEncodeStages) {
  MimiEncoderState state = model_->new_encoder_state(8);
  std::vector<at::Tensor> seanet, transformer, latent, codes;
  const int64_t frame = model_->frame_size();
  for (int64_t f = 0; f < io("audio").size(2) / frame; ++f) {
    MimiTrace trace;
    codes.push_back(model_->encode_step(io("audio").narrow(2, f * frame, frame), state, &trace));
    seanet.push_back(trace.seanet);
    transformer.push_back(trace.transformer);
    latent.push_back(trace.latent);
  }
  EXPECT_TRUE(close_rel(at::cat(seanet, 2), io("enc_seanet_stream"), kTol));
  EXPECT_TRUE(close_rel(at::cat(transformer, 2), io("enc_transformer_stream"), kTol));
  EXPECT_TRUE(close_rel(at::cat(latent, 2), io("latent_stream"), kTol));
  EXPECT_TRUE(equal_codes(at::cat(codes, 2), io("codes_stream")));
}

TEST_F(MimiParity, StreamingDecodeStages) {
  MimiDecoderState state = model_->new_decoder_state();
  std::vector<at::Tensor> up, transformer, audio;
  const at::Tensor& codes = io("codes_batch");
  for (int64_t f = 0; f < codes.size(2); ++f) {
    MimiTrace trace;
    audio.push_back(model_->decode_step(codes.narrow(2, f, 1), state, &trace));
    up.push_back(trace.latent);
    transformer.push_back(trace.transformer);
  }
  EXPECT_TRUE(close_rel(at::cat(up, 2), io("latent_up_stream"), kTol));
  EXPECT_TRUE(close_rel(at::cat(transformer, 2), io("dec_transformer_stream"), kTol));
  EXPECT_TRUE(close_rel(at::cat(audio, 2), io("audio_stream"), kTol));
}

TEST_F(MimiParity, FreshStateRepeatsTheStream) {
  // Two streams over the same input from fresh states give identical codes: nothing leaks
  // between states through the shared model.
  const int64_t frame = model_->frame_size();
  auto run = [&] {
    MimiEncoderState state = model_->new_encoder_state(8);
    std::vector<at::Tensor> codes;
    for (int64_t f = 0; f < 10; ++f)
      codes.push_back(model_->encode_step(io("audio").narrow(2, f * frame, frame), state));
    return at::cat(codes, 2);
  };
  EXPECT_TRUE(equal_codes(run(), run()));
}

// Streams stepped together (one product per convolution for all of them) give each stream what
// it gets alone: the first row is the golden stream, the second a quieter copy of it.
TEST_F(MimiParity, StreamsSteppedTogetherGetTheirSoloResults) {
  const int64_t frame = model_->frame_size();
  const int64_t frames = io("audio").size(2) / frame;
  const at::Tensor quiet = io("audio") * 0.5;
  auto encode = [&](const at::Tensor& audio) {
    MimiEncoderState state = model_->new_encoder_state(8);
    std::vector<at::Tensor> codes;
    for (int64_t f = 0; f < frames; ++f)
      codes.push_back(model_->encode_step(audio.narrow(2, f * frame, frame), state));
    return at::cat(codes, 2);
  };
  const at::Tensor together = encode(at::cat({io("audio"), quiet}, 0));
  EXPECT_TRUE(equal_codes(together.narrow(0, 0, 1), io("codes_stream")));
  EXPECT_TRUE(equal_codes(together.narrow(0, 1, 1), encode(quiet)));

  auto decode = [&](const at::Tensor& codes) {
    MimiDecoderState state = model_->new_decoder_state();
    std::vector<at::Tensor> audio;
    for (int64_t f = 0; f < codes.size(2); ++f)
      audio.push_back(model_->decode_step(codes.narrow(2, f, 1), state));
    return at::cat(audio, 2);
  };
  const at::Tensor& golden = io("codes_batch");
  const at::Tensor pair = decode(at::cat({golden, golden.flip({2})}, 0));
  EXPECT_TRUE(close_rel(pair.narrow(0, 0, 1), io("audio_stream"), kTol));
  EXPECT_TRUE(close_rel(pair.narrow(0, 1, 1), decode(golden.flip({2})), kTol));
}

// Streams with their own states, started at different frames and reading different numbers of
// codebooks, encoded together (the rows path a batched MimiEncoder takes) get their solo codes.
TEST_F(MimiParity, StreamsStartedApartEncodeTogetherAsAlone) {
  const int64_t frame = model_->frame_size();
  const int64_t frames = io("audio").size(2) / frame;
  ASSERT_GE(frames, 4);
  const at::Tensor first = io("audio"), second = io("audio").flip({2}) * 0.7;
  auto solo = [&](const at::Tensor& audio, int codebooks, int64_t from) {
    MimiEncoderState state = model_->new_encoder_state(codebooks);
    std::vector<at::Tensor> codes;
    for (int64_t f = from; f < frames; ++f)
      codes.push_back(model_->encode_step(audio.narrow(2, f * frame, frame), state));
    return at::cat(codes, 2);
  };
  MimiEncoderState a = model_->new_encoder_state(8), b = model_->new_encoder_state(4);
  std::vector<at::Tensor> codes_a, codes_b;
  const int64_t late = 2;  // the second stream starts at this frame
  for (int64_t f = 0; f < frames; ++f) {
    const at::Tensor frame_a = first.narrow(2, f * frame, frame);
    if (f < late) {
      codes_a.push_back(model_->encode_step(frame_a, std::vector<MimiEncoderState*>{&a}));
      continue;
    }
    const at::Tensor both =
        model_->encode_step(at::cat({frame_a, second.narrow(2, f * frame, frame)}, 0), {&a, &b});
    ASSERT_EQ(both.size(1), 8);
    codes_a.push_back(both.narrow(0, 0, 1));
    codes_b.push_back(both.narrow(0, 1, 1).narrow(1, 0, 4));
  }
  EXPECT_TRUE(equal_codes(at::cat(codes_a, 2), solo(first, 8, 0)));
  EXPECT_TRUE(equal_codes(at::cat(codes_b, 2), solo(second, 4, late)));
}

}  // namespace
}  // namespace kyutai
