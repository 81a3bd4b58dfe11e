// Parity of the C++ Moshi LM with the reference: the reference's own test assets (fused weight
// names), the lm_tiny forward pass, and the 40-step greedy LMGen trace.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "kyutai/error.h"
#include "kyutai/model/lm.h"
#include "kyutai/model/lm_generate.h"
#include "test_util.h"

namespace kyutai {
namespace {

using test::data_path;

constexpr double kAbsTol = 1e-5;

// Same NaN positions and max |a - b| <= tol elsewhere.
::testing::AssertionResult close_abs(const at::Tensor& actual, const at::Tensor& expected,
                                     double tol) {
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << " != " << expected.sizes();
  const at::Tensor a = actual.to(at::kCPU, at::kDouble), e = expected.to(at::kCPU, at::kDouble);
  if (!at::equal(at::isnan(a), at::isnan(e)))
    return ::testing::AssertionFailure() << "NaN positions differ";
  const double err = at::nan_to_num(a - e, 0.0).abs().max().item<double>();
  test::report("max abs", err, tol);
  if (err <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max abs error " << err << " > " << tol;
}

std::string tiny(const std::string& file) {
  return data_path("golden/lm_tiny/" + file);
}

TEST(LmReferenceAssets, ForwardMatchesStoredOutputs) {
  LmModel model(LmConfig::from_file(tiny("test_lm_config.json")));
  model.load(tiny("test_lm_model.safetensors"), test::device());  // fused legacy names
  const at::Tensor codes = read_tensors(tiny("test_lm_codes.safetensors")).at("codes");
  const auto ref = read_tensors(tiny("test_lm_out.safetensors"));
  const LmOutput out = model.forward(codes);
  EXPECT_TRUE(close_abs(out.logits, ref.at("logits"), kAbsTol));
  EXPECT_TRUE(close_abs(out.text_logits, ref.at("text_logits"), kAbsTol));
  EXPECT_TRUE(at::equal(out.mask.cpu(), ref.at("mask")));
  EXPECT_TRUE(at::equal(out.text_mask.cpu(), ref.at("text_mask")));
}

class LmTiny : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new LmModel(LmConfig::from_file(tiny("config.json")));
    model_->load(tiny("model.safetensors"), test::device());
    trace_ = new std::map<std::string, at::Tensor>(read_tensors(tiny("trace.safetensors")));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete trace_;
  }
  static const at::Tensor& golden(const std::string& name) { return trace_->at(name); }
  static std::vector<int64_t> user_frame(int64_t s) {
    const at::Tensor col = golden("user_codes")[0].select(1, s).contiguous();
    return std::vector<int64_t>(col.data_ptr<int64_t>(), col.data_ptr<int64_t>() + col.numel());
  }
  static LmModel* model_;
  static std::map<std::string, at::Tensor>* trace_;
};
LmModel* LmTiny::model_ = nullptr;
std::map<std::string, at::Tensor>* LmTiny::trace_ = nullptr;

TEST_F(LmTiny, NonStreamingForward) {
  const LmOutput out = model_->forward(golden("forward_codes"));
  EXPECT_TRUE(close_abs(out.logits, golden("forward_logits"), kAbsTol));
  EXPECT_TRUE(close_abs(out.text_logits, golden("forward_text_logits"), kAbsTol));
  EXPECT_TRUE(at::equal(out.mask.cpu(), golden("forward_mask")));
  EXPECT_TRUE(at::equal(out.text_mask.cpu(), golden("forward_text_mask")));
}

TEST_F(LmTiny, GreedyTraceMatchesEveryStep) {
  const LmGen gen(*model_);
  LmGenState state = gen.new_state(0);
  const SamplingParams greedy{0.0, 250, 0.0, 25};
  const at::Tensor& out_tokens = golden("out_tokens");
  const int64_t steps = out_tokens.size(2);
  for (int64_t s = 0; s < steps; ++s) {
    LmStepTrace trace;
    const auto out = gen.step(user_frame(s), state, greedy, &trace);
    ASSERT_EQ(out.has_value(), golden("valid")[s].item<bool>()) << "step " << s;
    const at::Tensor main_input = golden("step_main_input")[s];
    EXPECT_TRUE(at::equal(at::tensor(trace.main_input), main_input)) << "step " << s;
    EXPECT_TRUE(close_abs(trace.text_logits, golden("step_text_logits")[s], kAbsTol))
        << "step " << s;
    EXPECT_TRUE(close_abs(trace.audio_logits, golden("step_audio_logits")[s], kAbsTol))
        << "step " << s;
    EXPECT_TRUE(close_abs(trace.transformer_out, golden("step_transformer_out")[s], kAbsTol))
        << "step " << s;
    if (out) {
      EXPECT_TRUE(at::equal(at::tensor(*out), out_tokens[0].select(1, s))) << "step " << s;
    }
  }
}

TEST_F(LmTiny, StepZeroHooks) {
  const LmGen gen(*model_);
  LmGenState state = gen.new_state(0);
  LmStepTrace trace;
  gen.step(user_frame(0), state, {0.0, 0, 0.0, 0}, &trace);
  EXPECT_TRUE(close_abs(trace.text_logits, golden("text_logits_step0").view({-1}), kAbsTol));
  EXPECT_TRUE(close_abs(trace.audio_logits, golden("audio_logits_step0")[0], kAbsTol));
}

TEST_F(LmTiny, StreamingBeyondTheContextMatchesAWindowedForward) {
  // 96 steps with context 16: the KV ring wraps many times. The non-streaming forward over the
  // generated sequence (windowed causal mask) must give the same logits, as in the reference.
  const LmConfig& c = model_->config();
  const LmGen gen(*model_);
  LmGenState state = gen.new_state(0);
  const int64_t steps = 96;
  at::Tensor user = at::randint(0, c.card, {c.user_codebooks(), steps + 1}, at::kLong);
  std::vector<at::Tensor> text_logits, audio_logits, frames;
  for (int64_t s = 0; s <= steps; ++s) {
    LmStepTrace trace;
    const at::Tensor col = user.select(1, s).contiguous();
    const auto out = gen.step(
        std::vector<int64_t>(col.data_ptr<int64_t>(), col.data_ptr<int64_t>() + col.numel()), state,
        {0.0, 0, 0.0, 0}, &trace);
    ASSERT_EQ(out.has_value(), s >= 1);  // generation keeps going past the context
    text_logits.push_back(trace.text_logits);
    audio_logits.push_back(trace.audio_logits);
    if (out) frames.push_back(at::cat({at::tensor(*out), col}));
  }
  // frames[t] is the undelayed frame of time t (README: "trace_codes").
  const int64_t t_len = static_cast<int64_t>(frames.size());
  const LmOutput fwd = model_->forward(at::stack(frames, 1).unsqueeze(0));
  for (int64_t t = 0; t < t_len; ++t)
    EXPECT_TRUE(close_abs(fwd.text_logits[0][0][t], text_logits[t], 2e-5)) << "t " << t;
  for (int cb = 0; cb < c.dep_q; ++cb) {
    const int64_t d = c.delays[static_cast<size_t>(cb + 1)];
    for (int64_t t = 0; t + d < t_len; ++t)
      EXPECT_TRUE(close_abs(fwd.logits[0][cb][t], audio_logits[t + d][cb], 2e-5))
          << "cb " << cb << " t " << t;
  }
}

TEST_F(LmTiny, SamplingIsSeededAndRespectsTopK) {
  const LmGen gen(*model_);
  auto run = [&](uint64_t seed, const SamplingParams& params) {
    LmGenState state = gen.new_state(seed);
    std::vector<int64_t> all;
    for (int64_t s = 0; s < 20; ++s) {
      const auto out = gen.step(user_frame(s), state, params);
      if (out) all.insert(all.end(), out->begin(), out->end());
    }
    return all;
  };
  const SamplingParams hot{1.0, 250, 1.0, 25};
  EXPECT_EQ(run(7, hot), run(7, hot));
  EXPECT_NE(run(7, hot), run(8, hot));
  // top-k 1 is greedy whatever the temperature.
  EXPECT_EQ(run(7, {1.0, 1, 1.0, 1}), run(9, {0.0, 0, 0.0, 0}));
}

TEST_F(LmTiny, BadInputIsRefused) {
  const LmGen gen(*model_);
  LmGenState state = gen.new_state(0);
  EXPECT_THROW(gen.step(std::vector<int64_t>(7, 0), state, {}), InputError);  // needs 8
  std::vector<int64_t> codes(8, 0);
  codes[5] = 64;  // card is 64
  EXPECT_THROW(gen.step(codes, state, {}), InputError);
  codes[5] = -1;
  EXPECT_THROW(gen.step(codes, state, {}), InputError);
  codes[5] = 3;
  codes.push_back(99);  // extra codebooks are ignored, as the reference does
  EXPECT_NO_THROW(gen.step(codes, state, {}));
}

TEST(LmDtypes, Bfloat16CheckpointsLoadAsShippedInBothDtypes) {
  // Kyutai ships bfloat16 weights: they load as stored into a bfloat16 model and are widened
  // for a float32 one.
  auto tensors = read_tensors(tiny("model.safetensors"));
  for (auto& [name, t] : tensors) t = t.to(at::kBFloat16);
  const std::string path = ::testing::TempDir() + "/lm_tiny_bf16.safetensors";
  write_tensors(path, tensors);
  const LmConfig config = LmConfig::from_file(tiny("config.json"));
  LmModel f32(config, at::kFloat), bf16(config, at::kBFloat16);
  f32.load(path, test::device());
  bf16.load(path, test::device());
  for (const auto& spec : bf16.params())
    EXPECT_EQ(spec.slot->scalar_type(), at::kBFloat16) << spec.name;
  for (const auto& spec : f32.params())
    EXPECT_EQ(spec.slot->scalar_type(), at::kFloat) << spec.name;
  const at::Tensor codes = read_tensors(tiny("trace.safetensors")).at("forward_codes");
  const at::Tensor a = f32.forward(codes).text_logits, b = bf16.forward(codes).text_logits;
  const at::Tensor valid = ~at::isnan(a);
  EXPECT_TRUE(test::max_abs_below(a.masked_select(valid), b.masked_select(valid), 0.1));
}

TEST(LmManifest, Moshi7bHasExactlyTheReferenceKeys) {
  std::ifstream in(data_path("golden/moshi7b_manifest.json"));
  const nlohmann::json manifest = nlohmann::json::parse(in);
  const LmModel model(LmConfig::moshi_7b_2024(), at::kBFloat16);  // declares, allocates nothing
  const auto keys = state_dict_keys(model.params());
  const auto& expected = manifest["state_dict"];
  ASSERT_EQ(keys.size(), expected.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(keys[i].name, expected[i]["key"].get<std::string>()) << i;
    EXPECT_EQ(keys[i].shape, expected[i]["shape"].get<std::vector<int64_t>>()) << keys[i].name;
    EXPECT_EQ(keys[i].dtype, expected[i]["dtype"].get<std::string>()) << keys[i].name;
  }
  const auto fused = checkpoint_keys(model.params());
  const auto& expected_fused = manifest["checkpoint"];
  ASSERT_EQ(fused.size(), expected_fused.size());
  for (size_t i = 0; i < fused.size(); ++i) {
    EXPECT_EQ(fused[i].name, expected_fused[i]["key"].get<std::string>()) << i;
    EXPECT_EQ(fused[i].shape, expected_fused[i]["shape"].get<std::vector<int64_t>>())
        << fused[i].name;
    EXPECT_EQ(fused[i].dtype, expected_fused[i]["dtype"].get<std::string>()) << fused[i].name;
  }
  EXPECT_EQ(count_elements(model.params()), manifest["num_params"].get<int64_t>());
}

TEST(LmConfig, ReadsKyutaiConfigs) {
  const LmConfig c = LmConfig::from_file(tiny("config.json"));
  EXPECT_EQ(c.n_q, 16);
  EXPECT_EQ(c.dep_q, 8);
  EXPECT_EQ(c.max_delay(), 1);
  EXPECT_EQ(c.transformer.context, 16);
  EXPECT_EQ(c.depformer.weights_per_step, 8);
  EXPECT_EQ(c.tokenizer_name, "tokenizer.model");
  const LmConfig big = LmConfig::moshi_7b_2024();
  EXPECT_EQ(big.dim, 4096);
  EXPECT_EQ(big.transformer.dim_feedforward, 16896);
  EXPECT_EQ(big.depformer.num_layers, 6);
  EXPECT_THROW(
      LmConfig::from_json(R"({"num_layers": 2, "n_q": 2, "dep_q": 1, "delays": [0, 1]})", "d.json"),
      ConfigError);  // 3 delays needed
  EXPECT_THROW(LmConfig::from_json(R"({"num_layers": 2, "conditioners": {}})", "c.json"),
               ConfigError);
  // Without a context the temporal transformer cannot stream (nor can the reference's).
  try {
    LmConfig::from_json(R"({"num_layers": 2, "n_q": 2, "dep_q": 1, "delays": [0, 1, 1]})",
                        "noctx.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("noctx.json: transformer: context is missing"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace kyutai
