// Configuration parsing: string options become enums once, numbers are range-checked, and every
// error names the file, the field and the bad value.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kyutai/config.h"
#include "kyutai/error.h"
#include "test_util.h"

namespace kyutai {
namespace {

using test::data_path;

// A small valid LM configuration with `extra` keys added (or replacing the defaults).
std::string lm_json(const std::string& extra) {
  return R"({"num_layers": 2, "n_q": 2, "dep_q": 1, "delays": [0, 1, 1], "context": 8)" +
         (extra.empty() ? std::string() : ", " + extra) + "}";
}

// The ConfigError message of parsing `json` as an LM config, or "" when it parses.
std::string lm_error(const std::string& json) {
  try {
    LmConfig::from_json(json, "lm.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ParsesStringOptionsIntoEnums) {
  const LmConfig c = LmConfig::from_json(
      lm_json(R"("gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope",
                 "depformer_gating": "none", "depformer_pos_emb": "none")"),
      "lm.json");
  EXPECT_EQ(c.transformer.gating, Activation::silu);
  EXPECT_EQ(c.transformer.norm, NormKind::rms_norm_f32);
  EXPECT_EQ(c.transformer.positional_embedding, PositionalEmbedding::rope);
  EXPECT_FALSE(c.depformer.gating.has_value());
  EXPECT_EQ(c.depformer.positional_embedding, PositionalEmbedding::none);
  // Absent keys take the reference's class defaults; the depformer inherits gating.
  const LmConfig d = LmConfig::from_json(lm_json(R"("gating": "gelu")"), "lm.json");
  EXPECT_EQ(d.transformer.norm, NormKind::layer_norm);
  EXPECT_EQ(d.transformer.positional_embedding, PositionalEmbedding::sin);
  EXPECT_EQ(d.depformer.gating, Activation::gelu);
  const MimiConfig m = MimiConfig::from_file(data_path("golden/mimi_tiny/config.json"));
  EXPECT_EQ(m.seanet.pad_mode, PadMode::constant);
}

TEST(Config, UnknownOptionNamesTheValue) {
  EXPECT_NE(lm_error(lm_json(R"("gating": "swish")")).find("lm.json: unsupported gating 'swish'"),
            std::string::npos);
  EXPECT_NE(lm_error(lm_json(R"("norm": "batch_norm")")).find("unsupported norm 'batch_norm'"),
            std::string::npos);
  EXPECT_NE(lm_error(lm_json(R"("positional_embedding": "alibi")"))
                .find("unsupported positional_embedding 'alibi'"),
            std::string::npos);
  EXPECT_NE(lm_error(lm_json(R"("depformer_gating": "elu")")).find("unsupported gating 'elu'"),
            std::string::npos);
  EXPECT_NE(lm_error(lm_json(R"("gating": 3)")).find("'gating' must be a string"),
            std::string::npos);
}

}  // namespace
}  // namespace kyutai

namespace kyutai {
namespace {

TEST(ConfigBounds, EveryShippedConfigLoads) {
  const std::string root = KYUTAI_SOURCE_ROOT;
  for (const char* lm :
       {"/models/moshi-tiny/config.json", "/bench/configs/lm_mid_config.json",
        "/tests/data/golden/lm_tiny/config.json", "/tests/data/golden/lm_tiny/test_lm_config.json"})
    EXPECT_NO_THROW(LmConfig::from_file(root + lm)) << lm;
  for (const char* mimi : {"/models/moshi-tiny/mimi_config.json", "/bench/configs/mimi_config.json",
                           "/tests/data/golden/mimi_tiny/config.json"})
    EXPECT_NO_THROW(MimiConfig::from_file(root + mimi)) << mimi;
  EXPECT_NO_THROW(LmConfig::moshi_7b_2024());
  EXPECT_NO_THROW(MimiConfig::moshi_2024().validate("released"));
}

TEST(ConfigBounds, HugeIntegersAreRefusedNotTruncated) {
  // 4294967328 = 2^32 + 32 used to become 32.
  EXPECT_NE(lm_error(lm_json(R"("dim": 4294967328)"))
                .find("lm.json: 'dim' must be an integer in [1, 65536], not 4294967328"),
            std::string::npos)
      << lm_error(lm_json(R"("dim": 4294967328)"));
  EXPECT_NE(lm_error(lm_json(R"("dim": 1e300)")).find("'dim' must be an integer"),
            std::string::npos);
  EXPECT_NE(lm_error(lm_json(R"("dim": 18446744073709551615)")).find("'dim' must be an integer"),
            std::string::npos);
  EXPECT_NE(lm_error(lm_json(R"("dim": 64.5)")).find("'dim' must be an integer"),
            std::string::npos);
  EXPECT_NE(lm_error(lm_json(R"("hidden_scale": 1e300)")).find("'hidden_scale' must be"),
            std::string::npos);
  EXPECT_NE(
      lm_error(lm_json(R"("max_period": -5)")).find("'max_period' must be a finite number in"),
      std::string::npos);
  EXPECT_FALSE(lm_error(lm_json(R"("max_period": 1e999)")).empty());  // infinite
}

TEST(ConfigBounds, DelaysAndContextAreBounded) {
  // max_delay() + 2 used to overflow.
  EXPECT_NE(lm_error(R"({"num_layers": 2, "n_q": 2, "dep_q": 1, "context": 8,
                         "delays": [0, 1, 2147483647]})")
                .find("'delays' must be a list of integers in [0, 4096]"),
            std::string::npos);
  // A context of 1e8 steps used to allocate 25 GB of KV cache.
  EXPECT_NE(lm_error(lm_json(R"("context": 1e8)")).find("'context' must be an integer in [1, "),
            std::string::npos);
  // Within the step bound but too many bytes: 2 * 1024 layers * 2^20 steps * 128 * 4.
  const std::string big = lm_error(lm_json(R"("num_layers": 1024, "context": 1048576)"));
  EXPECT_NE(big.find("lm.json: transformer: context 1048576 needs"), std::string::npos) << big;
  EXPECT_NE(lm_error(lm_json(R"("n_q": 1000)")).find("'n_q' must be an integer in [1, 64]"),
            std::string::npos);
}

// A list takes its integers as a single value does: an integral float is an integer (JSON
// writers emit 4.0), a fractional one is refused with the same kind of message.
TEST(ConfigBounds, ListsTakeIntegralFloatsAsSingleValuesDo) {
  EXPECT_EQ(LmConfig::from_json(lm_json(R"("delays": [0, 2.0, 1])"), "lm.json").delays,
            (std::vector<int>{0, 2, 1}));
  EXPECT_EQ(LmConfig::from_json(lm_json(R"("card": 16.0)"), "lm.json").card, 16);
  const std::string list = lm_error(lm_json(R"("delays": [0, 1.5, 1])"));
  EXPECT_NE(list.find("lm.json: 'delays' must be a list of integers in [0, 4096], not [0,1.5,1]"),
            std::string::npos)
      << list;
  const std::string single = lm_error(lm_json(R"("dim": 64.5)"));
  EXPECT_NE(single.find("lm.json: 'dim' must be an integer in [1, 65536], not 64.5"),
            std::string::npos)
      << single;
  const std::string scalar = lm_error(lm_json(R"("delays": 1)"));
  EXPECT_NE(scalar.find("lm.json: 'delays' must be a list of integers in [0, 4096], not 1"),
            std::string::npos)
      << scalar;
}

TEST(ConfigBounds, MimiSizesAreBounded) {
  nlohmann::json doc =
      nlohmann::json::parse(std::ifstream(data_path("golden/mimi_tiny/config.json")));
  auto error = [](const nlohmann::json& d) {
    try {
      MimiConfig::from_json(d.dump(), "mimi.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  nlohmann::json bad = doc;
  bad["sample_rate"] = 1e12;
  EXPECT_NE(error(bad).find("mimi.json: 'sample_rate' must be an integer in [1, 384000]"),
            std::string::npos);
  bad = doc;
  bad["seanet"]["ratios"] = {1024, 1024, 1024, 1024, 1024, 1024, 1024};  // overflowed hop_length
  EXPECT_NE(error(bad).find("seanet.ratios multiply to more than"), std::string::npos);
  bad = doc;
  bad["seanet"]["dilation_base"] = 64;
  bad["seanet"]["n_residual_layers"] = 64;
  EXPECT_NE(error(bad).find("dilation_base ^ (n_residual_layers - 1)"), std::string::npos);
  bad = doc;
  bad["frame_rate"] = 0;
  EXPECT_NE(error(bad).find("'frame_rate' must be a finite number"), std::string::npos);
}

}  // namespace
}  // namespace kyutai
