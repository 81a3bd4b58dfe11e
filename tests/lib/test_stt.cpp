// Kyutai's speech-to-text models through the library (kyutai/stt.h) on the tiny STT
// configuration (tests/data/stt_tiny: dep_q 0, 32 codebooks, text_card_out below text_card, 4
// extra heads) with random weights. Parity with Kyutai's reference is test_stt_parity.cpp's;
// this file checks what STT adds against independent computations: greedy tokens from the text
// head limited to text_card_out, the extra heads' probabilities, the reference's first step,
// batching, loading in every weight format, and refusals.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <thread>

#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/mimi.h"
#include "kyutai/model/lm.h"
#include "kyutai/model/lm_generate.h"
#include "kyutai/moshi.h"
#include "kyutai/stt.h"
#include "test_util.h"

namespace kyutai {
namespace {

using test::data_path;
using Frames = std::vector<std::vector<int64_t>>;

std::string stt_config() {
  return data_path("stt_tiny/config.json");
}

std::string tokenizer_path() {
  return data_path("golden/lm_tiny/tokenizer.model");
}

std::shared_ptr<const Stt> random_stt(WeightFormat weights = WeightFormat::Float32) {
  return Stt::random(stt_config(), 7, weights, tokenizer_path());
}

// `steps` frames of 32 random codes in [0, 64).
Frames random_frames(int steps, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor codes = at::randint(0, 64, {steps, 32}, at::kLong);
  Frames f;
  for (int s = 0; s < steps; ++s) {
    const at::Tensor row = codes[s].contiguous();
    f.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + 32);
  }
  return f;
}

struct Outputs {
  std::vector<int64_t> tokens;
  std::vector<std::vector<float>> vad;
  int max_batch = 1;
};

Outputs transcribe(SttStream& stream, const Frames& frames) {
  Outputs o;
  for (const auto& f : frames) {
    const SttStream::Step s = stream.step(f.data(), static_cast<int>(f.size()));
    o.tokens.push_back(s.text_token);
    o.vad.push_back(s.vad);
    o.max_batch = std::max(o.max_batch, s.batch_size);
  }
  return o;
}

// The message of the ConfigError that `f` throws ("" when it throws none).
template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string lm_error(const std::string& json) {
  return config_error([&] { LmConfig::from_json(json, "test.json"); });
}

// The extra head `head`'s weight [extra_heads_dim, dim] as the model holds it.
at::Tensor extra_head_weight(const LmModel& model, int head) {
  const std::string name = "extra_heads." + std::to_string(head) + ".weight";
  for (const ParamSpec& spec : model.params())
    if (spec.name == name) return spec.weight ? spec.weight->dense() : *spec.slot;
  ADD_FAILURE() << name << " is not a parameter";
  return {};
}

TEST(SttConfig, FormatComesFromTheConfig) {
  const auto stt = random_stt();
  const SttFormat& f = stt->format();
  EXPECT_EQ(f.codebooks, 32);
  EXPECT_EQ(f.cardinality, 64);
  EXPECT_EQ(f.text_card, 92);  // text_card_out
  EXPECT_DOUBLE_EQ(f.frame_rate, 12.5);
  EXPECT_DOUBLE_EQ(f.delay_s, 0.5);
  EXPECT_DOUBLE_EQ(f.silence_prefix_s, 1.0);
  EXPECT_EQ(f.delay_frames, 7);            // ceil(0.5 * 12.5 = 6.25)
  EXPECT_EQ(f.silence_prefix_frames, 13);  // ceil(12.5)
  EXPECT_EQ(f.vad_heads, 4);
  EXPECT_EQ(f.context, 16);
  EXPECT_EQ(stt->weight_format(), WeightFormat::Float32);
  ASSERT_TRUE(stt->tokenizer());
  EXPECT_EQ(stt->model().config().dep_q, 0);
}

// The benchmarks' configurations have the released shapes: about 1.0 and 2.6 billion weights
// (declared only: nothing is allocated before loading).
TEST(SttConfig, TheBenchConfigsHaveTheReleasedSizes) {
  const std::string dir = KYUTAI_SOURCE_ROOT "/bench/configs/";
  const LmModel one(LmConfig::from_file(dir + "stt_1b_config.json"));
  const LmModel two(LmConfig::from_file(dir + "stt_2.6b_config.json"));
  EXPECT_TRUE(one.config().is_stt());
  EXPECT_EQ(one.config().extra_heads_num_heads, 4);
  EXPECT_EQ(two.config().extra_heads_num_heads, 0);
  EXPECT_NEAR(count_elements(one.params()) / 1e9, 1.0, 0.1);
  EXPECT_NEAR(count_elements(two.params()) / 1e9, 2.6, 0.15);
}

TEST(SttConfig, ConfigsThatCannotRunAsSttAreRefused) {
  const std::string base =
      R"({"num_layers": 1, "n_q": 2, "card": 8, "text_card": 16, "context": 4, "delays": )";
  const std::string stt = R"(, "model_type": "stt", "stt_config": {"audio_delay_seconds": 0.5}})";
  EXPECT_EQ(lm_error(base + R"([0, 0, 0], "dep_q": 0)" + stt), "");
  EXPECT_NE(lm_error(base + R"([0, 0, 0], "dep_q": 1)" + stt).find("dep_q must be 0, not 1"),
            std::string::npos);
  EXPECT_NE(lm_error(base + R"([0, 0, 0], "dep_q": 0, "model_type": "stt"})").find("stt_config"),
            std::string::npos);
  EXPECT_NE(lm_error(base + R"([0, 1, 1], "dep_q": 0)" + stt).find("delays must all be 0"),
            std::string::npos);
  EXPECT_NE(lm_error(base + R"([0, 0, 0], "dep_q": 0, "text_card_out": 17)" + stt)
                .find("text_card_out must not exceed text_card"),
            std::string::npos);
  // Without model_type "stt", no depformer is a mistake the message explains.
  EXPECT_NE(lm_error(base + R"([0, 0, 0], "dep_q": 0})").find("model_type 'stt'"),
            std::string::npos);
  EXPECT_NE(lm_error(base + R"([0, 0, 0], "dep_q": 0, "model_type": "tts"})")
                .find("model_type 'tts' is not supported"),
            std::string::npos);
}

TEST(SttConfig, EachApiRefusesTheOthersModels) {
  const std::string moshi = data_path("golden/lm_tiny/config.json");
  const std::string to_moshi = config_error([&] { Stt::random(moshi, 1); });
  EXPECT_NE(to_moshi.find("not a speech-to-text model"), std::string::npos) << to_moshi;
  EXPECT_NE(to_moshi.find("kyutai::Moshi"), std::string::npos) << to_moshi;
  EXPECT_NE(config_error([&] {
              Stt::load(locate_moshi(data_path("golden/lm_tiny")));
            }).find("kyutai::Moshi"),
            std::string::npos);
  const std::string to_stt = config_error([&] { Moshi::random(stt_config(), 1); });
  EXPECT_NE(to_stt.find("speech-to-text"), std::string::npos) << to_stt;
  EXPECT_NE(to_stt.find("kyutai::Stt"), std::string::npos) << to_stt;
}

// The stream against LmGen and an independent computation on the same model: the greedy text
// token is the first maximum of the text head's logits (text_card_out of them), and each VAD
// probability is softmax(W_i x)[0] of the transformer output x, computed here in float64.
TEST(SttStream, GreedyTokensAndVadMatchAnIndependentComputation) {
  const auto stt = random_stt();
  const LmModel& model = stt->model();
  const Frames frames = random_frames(40, 3);  // past the context of 16
  SttStream stream(stt);
  const Outputs out = transcribe(stream, frames);
  const LmGen gen(model);
  LmGenState state = gen.new_state(0);
  double worst = 0;
  for (size_t s = 0; s < frames.size(); ++s) {
    LmStepTrace trace;
    const auto tokens = gen.step(frames[s], state, SttStream::greedy(), &trace);
    ASSERT_TRUE(tokens);
    ASSERT_EQ(tokens->size(), 1u);
    ASSERT_EQ(trace.text_logits.numel(), 92);
    EXPECT_EQ((*tokens)[0], trace.text_logits.argmax().item<int64_t>());
    EXPECT_EQ(out.tokens[s], (*tokens)[0]) << "step " << s;
    ASSERT_EQ(out.vad[s].size(), 4u);
    const at::Tensor x = trace.transformer_out.to(at::kDouble);
    for (int h = 0; h < 4; ++h) {
      const at::Tensor p = at::softmax(at::mv(extra_head_weight(model, h).to(at::kDouble), x), 0);
      worst = std::max(worst, std::abs(p[0].item<double>() - out.vad[s][static_cast<size_t>(h)]));
    }
  }
  test::report("extra heads' largest error", worst, 1e-5);
  EXPECT_LT(worst, 1e-5);
}

// The reference's LMGen feeds its initial tokens at step 0 and so never reads the first frame.
TEST(SttStream, TheFirstFrameIsNeverRead) {
  const auto stt = random_stt();
  const Frames frames = random_frames(12, 5);
  Frames first = frames, second = frames;
  first[0] = random_frames(1, 99)[0];
  second[1] = random_frames(1, 99)[0];
  SttStream a(stt), b(stt), c(stt);
  const Outputs base = transcribe(a, frames), other = transcribe(b, first);
  EXPECT_EQ(base.tokens, other.tokens);
  EXPECT_EQ(base.vad, other.vad);
  EXPECT_NE(base.vad[1], transcribe(c, second).vad[1]);  // the second frame is read at step 1
}

TEST(SttStream, BatchedStreamsGetWhatTheyGetAlone) {
  KYUTAI_CPU_ONLY("batched steps are exact per row on the CPU");
  const auto stt = random_stt();
  const int kStreams = 3;
  std::vector<Frames> frames;
  std::vector<Outputs> alone(kStreams), batched(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    frames.push_back(random_frames(24, 10 + static_cast<uint64_t>(i)));
    SttStream stream(stt);
    alone[static_cast<size_t>(i)] = transcribe(stream, frames.back());
  }
  std::vector<std::unique_ptr<SttStream>> streams;
  for (int i = 0; i < kStreams; ++i)
    streams.push_back(std::make_unique<SttStream>(stt, BatchOptions{true, 200.0}));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < kStreams; ++i)
    threads.emplace_back([&, i] { batched[i] = transcribe(*streams[i], frames[i]); });
  for (auto& t : threads) t.join();
  int most = 1;
  for (size_t i = 0; i < kStreams; ++i) {
    EXPECT_EQ(batched[i].tokens, alone[i].tokens) << "stream " << i;
    EXPECT_EQ(batched[i].vad, alone[i].vad) << "stream " << i;
    most = std::max(most, batched[i].max_batch);
    EXPECT_EQ(streams[i]->stats().steps, 24u);
  }
  EXPECT_GT(most, 1);  // they did step together
}

// The tiny STT model's Mimi (32 codebooks of 64 codes), random weights.
std::shared_ptr<const Mimi> tiny_mimi() {
  return Mimi::random(KYUTAI_SOURCE_ROOT "/models/stt-tiny/mimi_config.json", 3);
}

// `frames` frames of a tone, one per stream phase.
std::vector<std::vector<float>> tone(const Mimi& mimi, int frames, float phase) {
  std::vector<std::vector<float>> out;
  const int n = mimi.format().frame_size;
  for (int f = 0; f < frames; ++f) {
    out.emplace_back(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) out.back()[i] = 0.3f * std::sin(0.02f * (f * n + i) + phase);
  }
  return out;
}

// Audio through SttStream::step(encoder, ...) is the encoder's codes through step(codes): alone
// exactly; batched (the frames of a batch encoded together, then stepped) the same tokens.
TEST(SttStream, AudioStepsEncodeInsideTheStep) {
  KYUTAI_CPU_ONLY("batched steps are exact per row on the CPU");
  const auto stt = random_stt();
  const auto mimi = tiny_mimi();
  constexpr int kStreams = 3, kFrames = 12;
  std::vector<std::vector<int64_t>> by_codes(kStreams), alone(kStreams), batched(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    const auto audio = tone(*mimi, kFrames, static_cast<float>(i));
    MimiEncoder encoder(mimi, 32), other(mimi, 32);
    SttStream a(stt), b(stt);
    std::vector<int64_t> codes(32);
    for (const auto& frame : audio) {
      encoder.encode_frame(frame.data(), frame.size(), codes.data());
      by_codes[i].push_back(a.step(codes.data(), 32).text_token);
      alone[i].push_back(b.step(other, frame.data(), frame.size()).text_token);
    }
    EXPECT_EQ(alone[i], by_codes[i]) << "stream " << i;
  }
  std::vector<std::thread> threads;
  std::vector<int> most(kStreams, 1);
  std::atomic<int> ready{0};  // all start together
  for (int i = 0; i < kStreams; ++i)
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < kStreams) std::this_thread::yield();
      MimiEncoder encoder(mimi, 32);
      SttStream stream(stt, BatchOptions{true, 200.0});
      for (const auto& frame : tone(*mimi, kFrames, static_cast<float>(i))) {
        const SttStream::Step step = stream.step(encoder, frame.data(), frame.size());
        batched[i].push_back(step.text_token);
        most[i] = std::max(most[i], step.batch_size);
      }
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kStreams; ++i) EXPECT_EQ(batched[i], alone[i]) << "stream " << i;
  EXPECT_GT(*std::max_element(most.begin(), most.end()), 1);  // they did encode and step together

  MimiEncoder encoder(mimi, 32), few(mimi, 8);
  SttStream stream(stt);
  const auto frame = tone(*mimi, 1, 0.f)[0];
  EXPECT_THROW(stream.step(encoder, frame.data(), frame.size() - 1), InputError);
  EXPECT_THROW(stream.step(few, frame.data(), frame.size()), InputError);  // too few codebooks
  EXPECT_EQ(stream.steps(), 0);
}

TEST(SttStream, BadCodesAreInputErrorsAndLeaveTheStreamAsItWas) {
  const auto stt = random_stt();
  SttStream stream(stt);
  std::vector<int64_t> codes(32, 1);
  stream.step(codes.data(), 32);
  codes[5] = 64;  // == cardinality
  EXPECT_THROW(stream.step(codes.data(), 32), InputError);
  codes[5] = -1;
  EXPECT_THROW(stream.step(codes.data(), 32), InputError);
  codes[5] = 1;
  EXPECT_THROW(stream.step(codes.data(), 31), InputError);  // too few codebooks
  EXPECT_THROW(stream.step(nullptr, 32), InputError);
  EXPECT_EQ(stream.steps(), 1);
  stream.step(codes.data(), 32);
  EXPECT_EQ(stream.steps(), 2);
}

TEST(SttStream, ResetStartsOver) {
  const auto stt = random_stt();
  const Frames frames = random_frames(20, 8);
  SttStream stream(stt);
  const Outputs first = transcribe(stream, frames);
  stream.finish();
  stream.reset();
  EXPECT_EQ(stream.steps(), 0);
  EXPECT_EQ(stream.stats().steps, 0u);
  const Outputs again = transcribe(stream, frames);
  EXPECT_EQ(first.tokens, again.tokens);
  EXPECT_EQ(first.vad, again.vad);
}

// A checkpoint written from random weights, in a Kyutai-style directory.
class SttLoading : public ::testing::Test {
 protected:
  void SetUp() override {
    stt_ = random_stt();
    stt_->model().save((dir_ / "model.safetensors").string());
    std::filesystem::copy_file(stt_config(), dir_ / "config.json");
    std::filesystem::copy_file(tokenizer_path(), dir_ / "tokenizer.model");
    cache_.dir = (dir_ / "cache").string();
  }
  test::TempDir dir_;
  std::shared_ptr<const Stt> stt_;
  WeightCacheOptions cache_;
};

TEST_F(SttLoading, LoadsWhatWasSaved) {
  const auto loaded = Stt::load(locate_moshi(dir_.str()), "cpu", WeightFormat::Float32, cache_);
  const Frames frames = random_frames(10, 4);
  SttStream a(stt_), b(loaded);
  const Outputs x = transcribe(a, frames), y = transcribe(b, frames);
  EXPECT_EQ(x.tokens, y.tokens);
  EXPECT_EQ(x.vad, y.vad);
  const MoshiFiles files = locate_moshi(dir_.str());
  const auto shared = Stt::load_shared(files, "cpu", WeightFormat::Float32, cache_);
  EXPECT_EQ(Stt::load_shared(files, "cpu", WeightFormat::Float32, cache_), shared);
  EXPECT_NE(shared, loaded);  // load() makes a copy of its own
  const std::string refused = config_error([&] { Moshi::load(locate_moshi(dir_.str())); });
  EXPECT_NE(refused.find("kyutai::Stt"), std::string::npos) << refused;
}

TEST_F(SttLoading, QuantizedFormatsLoadAndRun) {
  KYUTAI_CPU_ONLY("the quantized formats run on the CPU");
  for (WeightFormat format : {WeightFormat::Int8, WeightFormat::Int4}) {
    const auto stt = Stt::load(locate_moshi(dir_.str()), "cpu", format, cache_);
    EXPECT_EQ(stt->weight_format(), format);
    SttStream stream(stt, {}, KvCacheFormat::Int8);
    for (const auto& f : random_frames(10, 6)) {
      const SttStream::Step s = stream.step(f.data(), 32);
      EXPECT_GE(s.text_token, 0);
      EXPECT_LT(s.text_token, 92);
      ASSERT_EQ(s.vad.size(), 4u);
      for (float p : s.vad) EXPECT_TRUE(p >= 0 && p <= 1) << p;
    }
  }
}

}  // namespace
}  // namespace kyutai
