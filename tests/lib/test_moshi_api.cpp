// The public Moshi API: locating a Kyutai-style repository, the tokenizer and text stream,
// conversations (greedy parity through the API, reset, sharing), dtypes and clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kyutai/error.h"
#include "kyutai/moshi.h"
#include "test_util.h"

namespace kyutai {
namespace {

namespace fs = std::filesystem;
using test::data_path;
using test::TempDir;

std::string tiny_dir() {
  return data_path("golden/lm_tiny");
}

TEST(Tokenizer, ReproducesTheReferenceCheck) {
  std::ifstream in(data_path("golden/lm_tiny/tokenizer_check.json"));
  const nlohmann::json check = nlohmann::json::parse(in);
  const auto tok = TextTokenizer::load(tiny_dir() + "/tokenizer.model");
  ASSERT_EQ(tok->vocab_size(), check["vocab_size"].get<int>());
  for (const auto& [id, piece] : check["id_to_piece"].items())
    EXPECT_EQ(tok->piece(std::stoi(id)), piece.get<std::string>()) << id;
  for (const auto& sentence : check["encode"]) {
    const std::vector<int> ids = sentence["ids"].get<std::vector<int>>();
    EXPECT_EQ(tok->encode(sentence["text"].get<std::string>()), ids);
    EXPECT_EQ(tok->decode(ids), sentence["decode_of_ids"].get<std::string>());
  }
}

TEST(Tokenizer, MissingOrBrokenFilesAreClear) {
  EXPECT_THROW(TextTokenizer::load(tiny_dir() + "/absent.model"), NotFoundError);
  EXPECT_THROW(TextTokenizer::load(tiny_dir() + "/config.json"), FormatError);
}

TEST(TextStream, PaddingIsNotTextAndMarkersAreSpaces) {
  const auto tok = TextTokenizer::load(tiny_dir() + "/tokenizer.model");
  TextStream text(tok, {3, 0});
  EXPECT_EQ(text.push(3), "");
  EXPECT_EQ(text.push(0), "");
  EXPECT_EQ(text.push(18), " the");  // "▁the"
  EXPECT_EQ(text.push(5), "e");
}

TEST(TextStream, SplitCharactersComeOutWhole) {
  // Byte pieces as a byte-fallback tokenizer emits them, simulated on raw UTF-8: "é" is
  // C3 A9, "€" is E2 82 AC.
  EXPECT_EQ(complete_utf8_prefix("a\xc3"), 1u);
  EXPECT_EQ(complete_utf8_prefix("a\xc3\xa9"), 3u);
  EXPECT_EQ(complete_utf8_prefix("\xe2\x82"), 0u);
  EXPECT_EQ(complete_utf8_prefix("\xe2\x82\xac!"), 4u);
  EXPECT_EQ(sanitize_utf8("ok\xff"), "ok\xef\xbf\xbd");
  EXPECT_EQ(sanitize_utf8("\xc3("), "\xef\xbf\xbd(");
}

TEST(TextStream, ByteFallbackPiecesComeOutAsWholeCharacters) {
  // A byte-fallback tokenizer spells "é" as <0xC3><0xA9> and "€" as three byte pieces: nothing
  // comes out until the character is whole.
  TextStream text(TextTokenizer::load(tiny_dir() + "/tokenizer.model"), {3, 0});
  EXPECT_EQ(text.push_piece("\xe2\x96\x81"
                            "caf",
                            false),
            " caf");
  EXPECT_EQ(text.push_piece("<0xC3>", true), "");
  EXPECT_EQ(text.push_piece("<0xA9>", true), "\xc3\xa9");
  EXPECT_EQ(text.push_piece("<0xE2>", true), "");
  EXPECT_EQ(text.push_piece("<0x82>", true), "");
  EXPECT_EQ(text.push_piece("<0xAC>", true), "\xe2\x82\xac");
  // A character cut short by a word: the stray byte becomes U+FFFD, the word stays.
  EXPECT_EQ(text.push_piece("<0xC3>", true), "");
  EXPECT_EQ(text.push_piece("ok", false), "\xef\xbf\xbdok");
  EXPECT_EQ(text.push_piece("<0xE2>", true), "");
  EXPECT_EQ(text.flush(), "\xef\xbf\xbd");
}

TEST(LocateMoshi, ReadsAKyutaiStyleDirectory) {
  const MoshiFiles files = locate_moshi(tiny_dir());
  EXPECT_EQ(files.dir, tiny_dir());
  EXPECT_EQ(fs::path(files.config).filename(), "config.json");
  EXPECT_EQ(fs::path(files.weights).filename(), "model.safetensors");
  EXPECT_EQ(fs::path(files.tokenizer).filename(), "tokenizer.model");
  EXPECT_TRUE(files.mimi.weights.empty());  // lm_tiny ships no Mimi
  EXPECT_EQ(locate_moshi(tiny_dir() + "/config.json").weights, files.weights);
  EXPECT_EQ(locate_moshi(tiny_dir() + "/config.json").dir, tiny_dir());
  // config.json is parsed once, by locate_moshi; callers read what they need from it.
  EXPECT_EQ(files.lm_config.n_q, 16);
  EXPECT_EQ(files.lm_config.dep_q, 8);
  EXPECT_EQ(files.mimi_codebooks(), 8);
  EXPECT_EQ(files.path, tiny_dir());
}

TEST(LocateMoshi, MimiCodebooksCoverBothStreams) {
  LmConfig c = LmConfig::moshi_7b_2024();
  EXPECT_EQ(c.mimi_codebooks(), 8);
  c.n_q = 12, c.dep_q = 4;  // the user's stream is the wider one
  EXPECT_EQ(c.mimi_codebooks(), 8);
  c.n_q = 10, c.dep_q = 8;
  EXPECT_EQ(c.mimi_codebooks(), 8);
  c.n_q = 12, c.dep_q = 2;  // neither stream has 8
  EXPECT_EQ(c.mimi_codebooks(), 10);
}

TEST(LocateMoshi, AWeightsFileIsUsedAsNamed) {
  const TempDir dir;
  for (const char* name : {"config.json", "tokenizer.model"})
    fs::copy_file(tiny_dir() + "/" + name, dir / name);
  fs::copy_file(tiny_dir() + "/model.safetensors", dir / "other.safetensors");
  const MoshiFiles files = locate_moshi((dir / "other.safetensors").string());
  EXPECT_EQ(files.weights, (dir / "other.safetensors").string());
  EXPECT_EQ(files.path, files.weights);
  EXPECT_EQ(locate_moshi(files.path).weights, files.weights);  // what moshibin hands to moshilm
  EXPECT_EQ(Moshi::load(files)->format().model_codebooks, 8);
}

TEST(LocateMoshi, WithoutConfigJsonUsesThe7bNames) {
  // Legacy repositories (kyutai/moshiko-pytorch-bf16) have no config.json: the 7B defaults and
  // Kyutai's file names apply.
  const TempDir dir;
  for (const char* name : {kMoshiWeightsName, kTextTokenizerName, kMimiWeightsName})
    std::ofstream(dir / name) << "x";
  const MoshiFiles files = locate_moshi(dir.str());
  EXPECT_TRUE(files.config.empty());
  EXPECT_EQ(files.weights, (dir / kMoshiWeightsName).string());
  EXPECT_EQ(files.tokenizer, (dir / kTextTokenizerName).string());
  EXPECT_EQ(files.mimi.weights, (dir / kMimiWeightsName).string());
}

TEST(LocateMoshi, MissingPiecesAreNamed) {
  const TempDir dir;
  fs::copy_file(tiny_dir() + "/config.json", dir / "config.json");
  fs::copy_file(tiny_dir() + "/model.safetensors", dir / "model.safetensors");
  try {
    locate_moshi(dir.str());
    FAIL();
  } catch (const NotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(locate_moshi(data_path("golden/mimi_tiny")), ConfigError);  // a Mimi directory
}

class MoshiApi : public ::testing::Test {
 protected:
  static std::shared_ptr<const Moshi> tiny() {
    return Moshi::load_shared(locate_moshi(tiny_dir()), test::device_name());
  }
};

TEST_F(MoshiApi, LoadingReportsProgress) {
  std::vector<double> fractions;
  Moshi::load(locate_moshi(tiny_dir()), "cpu", WeightFormat::Float32, {},
              [&](double f) { fractions.push_back(f); });
  ASSERT_GT(fractions.size(), 10u);
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
}

TEST_F(MoshiApi, GreedyConversationReproducesTheTrace) {
  const auto trace = read_tensors(data_path("golden/lm_tiny/trace.safetensors"));
  const at::Tensor user = trace.at("user_codes")[0].contiguous();  // [8, 40]
  const at::Tensor expected = trace.at("out_tokens")[0];           // [9, 40]
  MoshiConversation conversation(tiny(), 1);
  const SamplingParams greedy{0.0, 0, 0.0, 0};
  for (int64_t s = 0; s < user.size(1); ++s) {
    const at::Tensor col = user.select(1, s).contiguous();
    const auto step = conversation.step(col.data_ptr<int64_t>(), 8, greedy);
    ASSERT_EQ(step.ready, s > 0);
    if (!step.ready) continue;
    EXPECT_EQ(step.text_token, expected[0][s].item<int64_t>());
    for (int k = 0; k < 8; ++k) EXPECT_EQ(step.audio[k], expected[k + 1][s].item<int64_t>());
  }
  EXPECT_EQ(conversation.steps(), 40);
}

TEST_F(MoshiApi, ResetStartsANewConversation) {
  MoshiConversation conversation(tiny(), 5);
  const std::vector<int64_t> codes = {1, 2, 3, 4, 5, 6, 7, 8};
  auto run = [&] {
    std::vector<int64_t> out;
    for (int s = 0; s < 6; ++s) {
      const auto step = conversation.step(codes.data(), 8, {});
      out.insert(out.end(), step.audio.begin(), step.audio.end());
      out.push_back(step.text_token);
    }
    return out;
  };
  const auto first = run();
  conversation.reset(5);
  EXPECT_EQ(run(), first);
  EXPECT_EQ(conversation.steps(), 6);
}

TEST_F(MoshiApi, ConversationsShareOneModel) {
  const auto a = tiny();
  MoshiConversation one(a, 1), two(tiny(), 2);
  EXPECT_EQ(&one.moshi(), &two.moshi());
}

TEST_F(MoshiApi, RunsInBfloat16) {
  const auto moshi =
      Moshi::load(locate_moshi(tiny_dir()), test::device_name(), WeightFormat::BFloat16);
  MoshiConversation conversation(moshi, 1);
  const std::vector<int64_t> codes(8, 9);
  for (int s = 0; s < 20; ++s) {
    const auto step = conversation.step(codes.data(), 8, {});
    if (!step.ready) continue;
    ASSERT_EQ(step.audio.size(), 8u);
    for (int64_t c : step.audio) EXPECT_TRUE(c >= 0 && c < 64);
    EXPECT_TRUE(step.text_token >= 0 && step.text_token < 96);
  }
}

// auto loads the format it stands for on the device, and shares that format's copy.
TEST_F(MoshiApi, AutoLoadsTheFormatOfTheDevice) {
  const std::string device = test::device_name();
  const WeightFormat chosen = resolve_weight_format(WeightFormat::Auto, device);
  WeightCacheOptions no_cache;
  no_cache.enabled = false;
  const auto files = locate_moshi(tiny_dir());
  const auto moshi = Moshi::load_shared(files, device, WeightFormat::Auto, no_cache);
  EXPECT_EQ(moshi->weight_format(), chosen);
  EXPECT_EQ(Moshi::load_shared(files, device, chosen, no_cache).get(), moshi.get());
  EXPECT_EQ(Moshi::load(files, device, WeightFormat::Auto, no_cache)->weight_format(), chosen);
}

TEST_F(MoshiApi, TokenizerOfTheWrongSizeIsRefused) {
  const TempDir dir;
  nlohmann::json config;
  std::ifstream(tiny_dir() + "/config.json") >> config;
  config["text_card"] = 100;
  std::ofstream(dir / "config.json") << config.dump();
  fs::copy_file(tiny_dir() + "/model.safetensors", dir / "model.safetensors");
  fs::copy_file(tiny_dir() + "/tokenizer.model", dir / "tokenizer.model");
  try {
    Moshi::load(locate_moshi(dir.str()));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("96 pieces but the model's text_card is 100"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(MoshiApi, BadCodesAreRefused) {
  MoshiConversation conversation(tiny(), 1);
  const std::vector<int64_t> few(7, 0);
  EXPECT_THROW(conversation.step(few.data(), 7, {}), InputError);
  std::vector<int64_t> big(8, 0);
  big[2] = 64;
  EXPECT_THROW(conversation.step(big.data(), 8, {}), InputError);
}

}  // namespace
}  // namespace kyutai
