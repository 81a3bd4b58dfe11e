// The weight-format table (names, aliases, the choice auto); the LM with bfloat16, int8 and
// int4 weights: per-step logits of the golden lm_tiny trace against the float32 reference, and
// the quantized-weights cache (hits, corrupt or foreign files rebuilt with a warning).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "kyutai/error.h"
#include "kyutai/model/lm.h"
#include "kyutai/model/lm_generate.h"
#include "kyutai/safetensors.h"
#include "kyutai/weights/weight_cache.h"
#include "test_util.h"

namespace kyutai {
namespace {

namespace fs = std::filesystem;
using test::data_path;
using test::rel_l2;

std::string tiny(const std::string& file) {
  return data_path("golden/lm_tiny/" + file);
}

struct StepLogits {
  std::vector<at::Tensor> text, audio;  // per step: [text_card], [dep_q, card]
};

// Steps `model` through the golden trace with the reference's inputs (teacher forcing): the
// temporal transformer gets the recorded main input of each step, and the depformer the float32
// model's greedy tokens, so that every step compares like with like.
StepLogits teacher_forced(const LmModel& model, const std::map<std::string, at::Tensor>& trace,
                          KvCacheFormat kv = KvCacheFormat::Model) {
  c10::InferenceMode guard;
  const at::Tensor& inputs = trace.at("step_main_input");  // [S, K]
  const at::Tensor& ref_audio = trace.at("step_audio_logits");
  const at::Tensor& ref_text = trace.at("step_text_logits");
  TransformerState state = model.new_text_state(1, kv);
  StepLogits out;
  for (int64_t s = 0; s < inputs.size(0); ++s) {
    at::Tensor text_logits;
    const at::Tensor h = model.text_step(inputs[s].view({1, -1}), state, &text_logits);
    out.text.push_back(text_logits.view({-1}));
    TransformerState dep = model.new_depformer_state(1);
    at::Tensor previous = ref_text[s].argmax().view({1});
    std::vector<at::Tensor> audio;
    for (int cb = 0; cb < model.config().dep_q; ++cb) {
      audio.push_back(model.depformer_step(cb, previous, h, dep).view({-1}));
      previous = ref_audio[s][cb].argmax().view({1});
    }
    out.audio.push_back(at::stack(audio));
  }
  return out;
}

// Every row's name and alias parse back to it; the names are what the table says.
TEST(WeightFormatTable, NamesAndAliasesRoundTrip) {
  for (const WeightFormatTraits& t : kWeightFormats) {
    EXPECT_EQ(&weight_format_traits(t.format), &t);
    EXPECT_STREQ(weight_format_name(t.format), t.name);
    EXPECT_EQ(parse_weight_format(t.name), t.format) << t.name;
    if (t.alias) {
      EXPECT_EQ(parse_weight_format(t.alias), t.format) << t.alias;
    }
  }
  // The spellings the elements' dtype has always taken.
  EXPECT_EQ(parse_weight_format("fp32"), WeightFormat::Float32);
  EXPECT_EQ(parse_weight_format("bf16"), WeightFormat::BFloat16);
  EXPECT_EQ(weight_format_choices(), "float32, bfloat16, int8, int4 or auto");
}

TEST(WeightFormatTable, AnUnknownNameIsRefusedWithTheAcceptedOnes) {
  try {
    parse_weight_format("int9");
    FAIL() << "int9 was accepted";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("must be " + weight_format_choices() + ", not 'int9'"),
              std::string::npos)
        << message;
    for (const WeightFormatTraits& t : kWeightFormats) {
      if (t.alias) {
        EXPECT_NE(message.find(t.alias), std::string::npos) << message;
      }
    }
  }
  EXPECT_THROW(parse_weight_format(""), ConfigError);
  EXPECT_THROW(parse_weight_format("Int8"), ConfigError);  // names are lowercase
}

// auto is a choice: bfloat16 on a GPU, int8 on a CPU; every format stands for itself, and no
// model is built in auto.
TEST(WeightFormatTable, AutoResolvesForTheDevice) {
  EXPECT_EQ(resolve_weight_format(WeightFormat::Auto, "cpu"), WeightFormat::Int8);
  EXPECT_EQ(resolve_weight_format(WeightFormat::Auto, "cuda"), WeightFormat::BFloat16);
  EXPECT_EQ(resolve_weight_format(WeightFormat::Auto, "cuda:1"), WeightFormat::BFloat16);
  for (const WeightFormatTraits& t : kWeightFormats) {
    if (t.format == WeightFormat::Auto) continue;
    EXPECT_EQ(resolve_weight_format(t.format, "cpu"), t.format) << t.name;
    EXPECT_EQ(resolve_weight_format(t.format, "cuda"), t.format) << t.name;
  }
  EXPECT_FALSE(weight_format_traits(WeightFormat::Auto).quantized);
  EXPECT_THROW(LmModel(LmConfig::from_file(tiny("config.json")), WeightFormat::Auto),
               ConfigError);
}

// Largest relative L2 error of any step's logits.
double worst_step_error(const std::vector<at::Tensor>& actual, const at::Tensor& expected) {
  double worst = 0;
  for (size_t s = 0; s < actual.size(); ++s)
    worst = std::max(worst, rel_l2(actual[s], expected[static_cast<int64_t>(s)]));
  return worst;
}

class WeightFormats : public ::testing::TestWithParam<std::pair<WeightFormat, double>> {};

// Bounds measured on lm_tiny (random weights, so harsher on quantization than trained ones)
// with a margin; docs/QUANTIZATION.md lists the measured values.
INSTANTIATE_TEST_SUITE_P(LmTiny, WeightFormats,
                         ::testing::Values(std::make_pair(WeightFormat::Float32, 1e-5),
                                           std::make_pair(WeightFormat::BFloat16, 0.05),
                                           std::make_pair(WeightFormat::Int8, 0.05),
                                           std::make_pair(WeightFormat::Int4, 0.5)),
                         [](const auto& info) {
                           return std::string(weight_format_name(info.param.first));
                         });

TEST_P(WeightFormats, TraceLogitsCloseToFloat32) {
  const auto [format, bound] = GetParam();
  // float32 and bfloat16 also run on a GPU, as plain tensors; int8 and int4 are CPU kernels.
  if (format == WeightFormat::Int8 || format == WeightFormat::Int4) {
    KYUTAI_CPU_ONLY(weight_format_name(format) << " weights are CPU kernels");
  }
  const auto trace = read_tensors(tiny("trace.safetensors"));
  LmModel model(LmConfig::from_file(tiny("config.json")), format);
  model.load(tiny("model.safetensors"), test::device());
  const StepLogits got = teacher_forced(model, trace);
  const double text = worst_step_error(got.text, trace.at("step_text_logits"));
  const double audio = worst_step_error(got.audio, trace.at("step_audio_logits"));
  std::printf("[ %s ] worst per-step relative L2 error: text logits %.2e, audio logits %.2e\n",
              weight_format_name(format), text, audio);
  EXPECT_LE(text, bound);
  EXPECT_LE(audio, bound);
}

// The int8 KV cache (model/transformer.h) with float32 weights: the error it alone adds, on the
// golden trace (every step attends to all the steps before it). Bound: the measured value with a
// margin; docs/QUANTIZATION.md lists it.
TEST(KvCacheInt8, TraceLogitsCloseToTheReference) {
  KYUTAI_CPU_ONLY("the int8 cache is read by the CPU attention kernel");
  const auto trace = read_tensors(tiny("trace.safetensors"));
  LmModel model(LmConfig::from_file(tiny("config.json")), WeightFormat::Float32);
  model.load(tiny("model.safetensors"), at::kCPU);
  const StepLogits got = teacher_forced(model, trace, KvCacheFormat::Int8);
  const double text = worst_step_error(got.text, trace.at("step_text_logits"));
  const double audio = worst_step_error(got.audio, trace.at("step_audio_logits"));
  std::printf("[ int8 KV cache ] worst per-step relative L2 error: text logits %.2e, audio "
              "logits %.2e\n",
              text, audio);
  EXPECT_LE(text, 0.02);  // measured 7.3e-3 for both
  EXPECT_LE(audio, 0.02);
  EXPECT_GT(text, 0.0);  // the cache really was int8
}

TEST(WeightFormatsGreedy, Float32TraceStaysExact) {
  // The float32 weights now go through the kernels: the greedy tokens must not move.
  KYUTAI_CPU_ONLY("it checks the CPU kernels");
  const auto trace = read_tensors(tiny("trace.safetensors"));
  LmModel model(LmConfig::from_file(tiny("config.json")), WeightFormat::Float32);
  model.load(tiny("model.safetensors"), at::kCPU);
  const LmGen gen(model);
  LmGenState state = gen.new_state(0);
  const at::Tensor& user = trace.at("user_codes")[0];
  const at::Tensor& tokens = trace.at("out_tokens")[0];
  int checked = 0;
  for (int64_t s = 0; s < tokens.size(1); ++s) {
    const at::Tensor col = user.select(1, s).contiguous();
    const auto out = gen.step(
        std::vector<int64_t>(col.data_ptr<int64_t>(), col.data_ptr<int64_t>() + col.numel()), state,
        {0.0, 0, 0.0, 0});
    if (!out) continue;  // the first steps, before the delays are filled
    EXPECT_TRUE(at::equal(at::tensor(*out), tokens.select(1, s))) << "step " << s;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// The quantized-weights cache, in a scratch directory.
class WeightCacheTest : public ::testing::Test {
 protected:
  WeightCacheTest() {
    fs::copy_file(tiny("model.safetensors"), dir_ / "model.safetensors");
    options_.dir = (dir_ / "cache").string();
    options_.warn = [this](const std::string& m) { warnings_.push_back(m); };
    options_.info = [this](const std::string& m) { infos_.push_back(m); };
  }
  void SetUp() override { KYUTAI_CPU_ONLY("the cache holds CPU kernels' int8 weights"); }
  std::string weights() const { return (dir_ / "model.safetensors").string(); }
  // Loads the model in int8 through the cache and returns its first step's text logits.
  at::Tensor load_and_step(const std::string& path) {
    LmModel model(LmConfig::from_file(tiny("config.json")), WeightFormat::Int8);
    model.load(path, at::kCPU, &options_);
    c10::InferenceMode guard;
    TransformerState state = model.new_text_state(1);
    at::Tensor logits;
    model.text_step(trace_.at("step_main_input")[3].view({1, -1}), state, &logits);
    return logits;
  }
  std::string cache_file() const {
    for (const auto& e : fs::directory_iterator(options_.dir)) return e.path().string();
    return "";
  }
  bool said(const std::vector<std::string>& messages, const std::string& what) const {
    for (const auto& m : messages)
      if (m.find(what) != std::string::npos) return true;
    return false;
  }

  test::TempDir dir_;
  WeightCacheOptions options_;
  std::vector<std::string> warnings_, infos_;
  std::map<std::string, at::Tensor> trace_ = read_tensors(tiny("trace.safetensors"));
};

TEST_F(WeightCacheTest, SecondLoadUsesTheCacheWithTheSameResults) {
  const at::Tensor first = load_and_step(weights());
  EXPECT_TRUE(said(infos_, "written to the cache"));
  ASSERT_FALSE(cache_file().empty());
  infos_.clear();
  const at::Tensor second = load_and_step(weights());
  EXPECT_TRUE(said(infos_, "from the cache"));
  EXPECT_FALSE(said(infos_, "written"));
  EXPECT_TRUE(warnings_.empty());
  EXPECT_TRUE(at::equal(first, second));
}

TEST_F(WeightCacheTest, TruncatedCacheIsRebuiltWithAWarning) {
  const at::Tensor first = load_and_step(weights());
  fs::resize_file(cache_file(), fs::file_size(cache_file()) / 2);
  const at::Tensor second = load_and_step(weights());
  EXPECT_TRUE(said(warnings_, "ignoring the quantized-weights cache"));
  EXPECT_TRUE(said(infos_, "written to the cache"));
  EXPECT_TRUE(at::equal(first, second));
  warnings_.clear();
  infos_.clear();
  load_and_step(weights());  // rebuilt whole: used again
  EXPECT_TRUE(warnings_.empty());
  EXPECT_TRUE(said(infos_, "from the cache"));
}

TEST_F(WeightCacheTest, TamperedCacheIsRebuiltWithAWarning) {
  const at::Tensor first = load_and_step(weights());
  {
    std::fstream f(cache_file(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(cache_file()) - 100));
    f.put('\x5a');
  }
  const at::Tensor second = load_and_step(weights());
  EXPECT_TRUE(said(warnings_, "checksum"));
  EXPECT_TRUE(at::equal(first, second));
}

TEST_F(WeightCacheTest, CacheOfAnotherSourceIsNotUsed) {
  load_and_step(weights());
  const std::string made_for_first = cache_file();
  // Another file with the same name and contents: a new identity, so a new cache name. Put the
  // first file's cache under that name: its metadata still names the first source.
  const std::string other = (dir_ / "other").string();
  fs::create_directories(other);
  fs::copy_file(weights(), other + "/model.safetensors");
  warnings_.clear();
  infos_.clear();
  load_and_step(other + "/model.safetensors");
  std::string made_for_other;
  for (const auto& e : fs::directory_iterator(options_.dir))
    if (e.path().string() != made_for_first) made_for_other = e.path().string();
  ASSERT_FALSE(made_for_other.empty());
  fs::copy_file(made_for_first, made_for_other, fs::copy_options::overwrite_existing);
  warnings_.clear();
  load_and_step(other + "/model.safetensors");
  EXPECT_TRUE(said(warnings_, "made from another file"));
}

TEST(WeightCacheChecksum, DetectsOneBitAndDependsOnTheSeed) {
  std::vector<uint8_t> data(1000, 7);
  const uint64_t h = checksum64(data.data(), data.size());
  data[517] ^= 1;
  EXPECT_NE(h, checksum64(data.data(), data.size()));
  EXPECT_NE(checksum64(data.data(), data.size(), 1), checksum64(data.data(), data.size(), 2));
}

}  // namespace
}  // namespace kyutai
