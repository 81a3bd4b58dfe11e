// Configuration parsing: string options become enums once, numbers are range-checked, and every
// error names the file, the field and the bad value.
#include <gtest/gtest.h>

#include <string>

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
