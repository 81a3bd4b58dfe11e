// Mimi configuration, strict checkpoint loading in both name forms, the key manifest of the
// released model, and clear errors for wrong input.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "kyutai/error.h"
#include "kyutai/model/mimi_model.h"
#include "test_util.h"

namespace kyutai {
namespace {

using test::temp_path;

using nlohmann::json;
using test::data_path;

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string tiny_config() {
  return data_path("golden/mimi_tiny/config.json");
}
std::string tiny_weights() {
  return data_path("golden/mimi_tiny/model.safetensors");
}

// Compares declared keys with a manifest list of {key, shape, dtype}, in order.
void expect_keys(const std::vector<KeyInfo>& keys, const json& manifest) {
  ASSERT_EQ(keys.size(), manifest.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(keys[i].name, manifest[i]["key"].get<std::string>()) << "entry " << i;
    EXPECT_EQ(keys[i].shape, manifest[i]["shape"].get<std::vector<int64_t>>()) << keys[i].name;
    EXPECT_EQ(keys[i].dtype, manifest[i]["dtype"].get<std::string>()) << keys[i].name;
  }
}

TEST(MimiConfig, DefaultIsTheReleasedModel) {
  const MimiConfig released = MimiConfig::moshi_2024();
  const MimiConfig file =
      MimiConfig::from_file(std::string(KYUTAI_SOURCE_ROOT) + "/bench/configs/mimi_config.json");
  EXPECT_EQ(released.frame_size(), 1920);
  EXPECT_EQ(file.frame_size(), 1920);
  EXPECT_EQ(released.seanet.ratios, file.seanet.ratios);
  EXPECT_EQ(released.quantizer.n_q, file.quantizer.n_q);
  EXPECT_EQ(released.transformer.context, file.transformer.context);
  EXPECT_EQ(released.transformer.layer_scale, file.transformer.layer_scale);
  // Same module tree, key for key.
  MimiModel a(released), b(file);
  EXPECT_EQ(state_dict_keys(a.params()).size(), state_dict_keys(b.params()).size());
}

TEST(MimiConfig, ReadsTheReferenceSchema) {
  const MimiConfig c = MimiConfig::from_file(tiny_config());
  EXPECT_EQ(c.sample_rate, 24000);
  EXPECT_EQ(c.frame_size(), 48);
  EXPECT_EQ(c.seanet.hop_length(), 24);
  EXPECT_EQ(c.resample_stride(), 2);
  EXPECT_EQ(c.quantizer.n_q, 8);
  EXPECT_EQ(c.quantizer.bins, 64);
  EXPECT_EQ(c.transformer.context, 8);
}

TEST(MimiConfig, RejectsBadFiles) {
  EXPECT_THROW(MimiConfig::from_file(temp_path("missing.json")), NotFoundError);
  EXPECT_THROW(MimiConfig::from_json("{oops", "bad.json"), ConfigError);
  EXPECT_THROW(MimiConfig::from_json(R"({"sample_rate": 24000})", "partial.json"), ConfigError);
  json doc = read_json(tiny_config());
  doc["seanet"]["ratios"] = "four";
  try {
    MimiConfig::from_json(doc.dump(), "typed.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("typed.json.seanet: 'ratios'"), std::string::npos)
        << e.what();
  }
  doc = read_json(tiny_config());
  doc["frame_rate"] = 700.0;  // not a whole number of samples per frame
  EXPECT_THROW(MimiConfig::from_json(doc.dump(), "rate.json"), ConfigError);
}

TEST(MimiManifest, ReleasedModelHasExactlyTheReferenceKeys) {
  const json manifest = read_json(data_path("golden/mimi_manifest.json"));
  const MimiModel model(MimiConfig::moshi_2024());
  expect_keys(state_dict_keys(model.params()), manifest["state_dict"]);
  expect_keys(checkpoint_keys(model.params()), manifest["checkpoint"]);
  EXPECT_EQ(count_elements(model.params()),
            manifest["num_params"].get<int64_t>() + manifest["num_buffers_elems"].get<int64_t>());
}

// Rewrites the tiny model in the published checkpoint form: fused attention projections and the
// old codebook buffer names.
std::string write_fused_checkpoint() {
  auto tensors = read_tensors(tiny_weights());
  std::map<std::string, at::Tensor> out;
  std::map<std::string, std::vector<at::Tensor>> fused;
  for (const auto& [name, t] : tensors) {
    const size_t in = name.find(".in_projs."), outp = name.find(".out_projs.");
    if (in != std::string::npos) {
      fused[name.substr(0, in) + ".in_proj_weight"].push_back(t);
    } else if (outp != std::string::npos) {
      fused[name.substr(0, outp) + ".out_proj.weight"].push_back(t);
    } else {
      std::string renamed = name;
      for (auto [from, to] : {std::pair{"._initialized", ".inited"},
                              {".cluster_usage", ".cluster_size"},
                              {".embedding_sum", ".embed_avg"}}) {
        const size_t at = renamed.find(from);
        if (at != std::string::npos) renamed.replace(at, std::string(from).size(), to);
      }
      out[renamed] = t;
    }
  }
  for (auto& [name, parts] : fused) out[name] = at::cat(parts, 0);
  const std::string path = temp_path("fused.safetensors");
  write_tensors(path, out);
  return path;
}

TEST(MimiLoading, FusedCheckpointNamesGiveIdenticalOutputs) {
  const MimiConfig config = MimiConfig::from_file(tiny_config());
  MimiModel plain(config), fused(config);
  plain.load(tiny_weights(), at::kCPU);
  fused.load(write_fused_checkpoint(), at::kCPU);
  const at::Tensor audio = read_tensors(data_path("golden/mimi_tiny/io.safetensors")).at("audio");
  const at::Tensor codes = plain.encode(audio, 8);
  EXPECT_TRUE(at::equal(fused.encode(audio, 8), codes));
  EXPECT_TRUE(at::equal(fused.decode(codes), plain.decode(codes)));
}

// Loads a modified copy of the tiny checkpoint and returns the CheckpointError it raises.
template <class Edit>
CheckpointError load_error(Edit&& edit) {
  auto tensors = read_tensors(tiny_weights());
  edit(tensors);
  const std::string path = temp_path("edited.safetensors");
  write_tensors(path, tensors);
  MimiModel model(MimiConfig::from_file(tiny_config()));
  try {
    model.load(path, at::kCPU);
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    return e;
  }
  ADD_FAILURE() << "loading did not fail";
  return CheckpointError("", "", "");
}

TEST(MimiLoading, MissingKeyIsNamed) {
  const auto e = load_error([](auto& t) { t.erase("decoder.model.0.conv.conv.bias"); });
  EXPECT_EQ(e.key(), "decoder.model.0.conv.conv.bias");
  EXPECT_NE(std::string(e.what()).find("missing key"), std::string::npos);
}

TEST(MimiLoading, UnexpectedKeyIsNamed) {
  const auto e = load_error([](auto& t) { t["decoder.extra.weight"] = at::zeros({2}); });
  EXPECT_EQ(e.key(), "decoder.extra.weight");
  EXPECT_NE(std::string(e.what()).find("unexpected key"), std::string::npos);
}

TEST(MimiLoading, ShapeMismatchGivesBothShapes) {
  const auto e = load_error([](auto& t) {
    t["encoder.model.0.conv.conv.weight"] = at::zeros({8, 1, 5});
  });
  EXPECT_EQ(e.key(), "encoder.model.0.conv.conv.weight");
  const std::string msg = e.what();
  EXPECT_NE(msg.find("expected shape [8, 1, 7]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("found [8, 1, 5]"), std::string::npos) << msg;
}

TEST(MimiLoading, MalformedFileIsAFormatError) {
  const std::string path = temp_path("garbage.safetensors");
  std::ofstream(path, std::ios::binary) << std::string(64, '\x7f');
  MimiModel model(MimiConfig::from_file(tiny_config()));
  EXPECT_THROW(model.load(path, at::kCPU), FormatError);
  EXPECT_THROW(model.load(temp_path("absent.safetensors"), at::kCPU), NotFoundError);
}

class MimiInput : public ::testing::Test {
 protected:
  void SetUp() override { model_.load(tiny_weights(), at::kCPU); }
  MimiModel model_{MimiConfig::from_file(tiny_config())};
};

TEST_F(MimiInput, StreamingEncodeNeedsExactlyOneFrame) {
  MimiEncoderState state = model_.new_encoder_state(8);
  EXPECT_THROW(model_.encode_step(at::zeros({1, 1, 47}), state), InputError);
  EXPECT_THROW(model_.encode_step(at::zeros({1, 1, 96}), state), InputError);
  EXPECT_THROW(model_.encode_step(at::zeros({1, 2, 48}), state), InputError);
  EXPECT_NO_THROW(model_.encode_step(at::zeros({1, 1, 48}), state));
}

TEST_F(MimiInput, CodesMustBeInRange) {
  at::Tensor codes = at::zeros({1, 8, 1}, at::kLong);
  codes[0][3][0] = 64;  // cardinality is 64
  MimiDecoderState state = model_.new_decoder_state();
  EXPECT_THROW(model_.decode_step(codes, state), InputError);
  codes[0][3][0] = -1;
  EXPECT_THROW(model_.decode(codes), InputError);
}

TEST_F(MimiInput, CodebookCountIsChecked) {
  EXPECT_THROW(model_.new_encoder_state(0), InputError);
  EXPECT_THROW(model_.new_encoder_state(9), InputError);
  EXPECT_THROW(model_.encode(at::zeros({1, 1, 48}), 9), InputError);
  EXPECT_THROW(model_.decode(at::zeros({1, 9, 2}, at::kLong)), InputError);
  for (int n = 1; n <= 8; ++n) EXPECT_EQ(model_.encode(at::zeros({1, 1, 96}), n).size(1), n);
}

TEST_F(MimiInput, WholeSignalPadsToWholeFrames) {
  EXPECT_EQ(model_.encode(at::zeros({1, 1, 100}), 8).size(2), 3);
  EXPECT_EQ(model_.decode(at::zeros({1, 8, 3}, at::kLong)).size(2), 144);
}

}  // namespace
}  // namespace kyutai
