// Kyutai STT against Kyutai's reference: tests/data/golden/stt_tiny, made by
// tools/reference/stt_golden.py with the reference's PyTorch code on models/stt-tiny (random
// weights with the STT structure). The reference ran its Mimi encoder and LMGen at temperature 0
// as delayed-streams-modeling's stt_from_file_pytorch.py does, and that script's own word rule
// on its text tokens. Here: Mimi's codes equal, greedy text tokens identical, the extra heads'
// probabilities within 1e-5, and words and times identical, through SttStream alone and batched.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "kyutai/config.h"
#include "kyutai/hub.h"
#include "kyutai/io/params.h"
#include "kyutai/mimi.h"
#include "kyutai/model/stt_words.h"
#include "kyutai/stt.h"
#include "kyutai/text.h"
#include "test_util.h"

namespace kyutai {
namespace {

constexpr double kProbTol = 1e-5;
// The script computes the times of the last segment's words from a torch tensor, so in float32
// (0.9 s comes out as 0.90000010 s), and the others in Python's float64, as the library does.
constexpr double kTimeTol = 1e-6;

std::string golden(const std::string& file) {
  return test::data_path("golden/stt_tiny/" + file);
}

std::string repo() {
  return KYUTAI_SOURCE_ROOT "/models/stt-tiny";
}

const nlohmann::json& words_json() {
  static const nlohmann::json j = nlohmann::json::parse(std::ifstream(golden("words.json")));
  return j;
}

std::vector<SttWord> golden_words(const nlohmann::json& list) {
  std::vector<SttWord> words;
  for (const auto& w : list) words.push_back({w[0], w[1], w[2]});
  return words;
}

// Words equal in text, times within kTimeTol.
void expect_words(const std::vector<SttWord>& got, const std::vector<SttWord>& want,
                  const std::string& where) {
  ASSERT_EQ(got.size(), want.size()) << where;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].text, want[i].text) << where << ", word " << i;
    EXPECT_NEAR(got[i].start_s, want[i].start_s, kTimeTol) << where << ", word " << i;
    EXPECT_NEAR(got[i].end_s, want[i].end_s, kTimeTol) << where << ", word " << i;
  }
}

std::shared_ptr<const Stt> tiny_stt() {
  static const auto stt = Stt::load(locate_moshi(repo()), "cpu", WeightFormat::Float32);
  return stt;
}

struct Transcript {
  std::vector<int64_t> tokens;
  std::vector<std::vector<float>> vad;
  std::vector<SttWord> words;
};

// Stream `b` of a [B, 32, T] code tensor through `stream`, then finish().
Transcript run_codes(SttStream& stream, const at::Tensor& codes, int64_t b) {
  Transcript r;
  const at::Tensor rows = codes[b].t().contiguous();  // [T, 32]
  for (int64_t t = 0; t < rows.size(0); ++t) {
    const SttStream::Step s = stream.step(rows[t].data_ptr<int64_t>(), 32);
    r.tokens.push_back(s.text_token);
    r.vad.push_back(s.vad);
    r.words.insert(r.words.end(), s.words.begin(), s.words.end());
  }
  for (SttWord& w : stream.finish()) r.words.push_back(w);
  return r;
}

// Tokens identical; each head's probability of no voice (class 0; `heads` is [T, heads]) within
// kProbTol of the reference's.
void expect_matches(const Transcript& run, const at::Tensor& tokens, const at::Tensor& heads,
                    const std::string& where) {
  const at::Tensor t = tokens.contiguous();
  EXPECT_EQ(run.tokens,
            std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()))
      << where;
  ASSERT_EQ(static_cast<int64_t>(run.vad.size()), heads.size(0)) << where;
  double worst = 0;
  for (size_t s = 0; s < run.vad.size(); ++s) {
    ASSERT_EQ(static_cast<int64_t>(run.vad[s].size()), heads.size(1)) << where;
    for (size_t h = 0; h < run.vad[s].size(); ++h)
      worst = std::max(
          worst, std::abs(static_cast<double>(run.vad[s][h]) -
                          heads[static_cast<int64_t>(s)][static_cast<int64_t>(h)].item<double>()));
  }
  test::report("largest VAD probability error", worst, kProbTol);
  EXPECT_LE(worst, kProbTol) << where;
}

TEST(SttParity, TheGoldenSetIsForTheseModelFiles) {
  // The golden data was made on models/stt-tiny as it is: if those files are made again, so
  // must the golden data be (tools/reference/README.md). words.json records their SHA-256 and
  // sizes; the sizes are checked here.
  const auto& sizes = words_json().at("model_files_bytes");
  EXPECT_EQ(sizes.size(), 4u);
  for (const auto& [name, bytes] : sizes.items())
    EXPECT_EQ(std::filesystem::file_size(repo() + "/" + name), bytes.get<uintmax_t>())
        << "models/stt-tiny/" << name << " is not the file the golden data was made with";
  const auto stt = tiny_stt();
  EXPECT_EQ(stt->format().codebooks, 32);
  EXPECT_EQ(stt->format().silence_prefix_frames, 13);
  EXPECT_EQ(stt->format().delay_frames, 7);
}

// Three streams of random codes, each alone: the reference stepped them as one batch of three.
TEST(SttParity, CodesGiveTheReferencesTokensAndProbabilities) {
  KYUTAI_CPU_ONLY("models/stt-tiny loads on the CPU here");
  const auto g = read_tensors(golden("codes.safetensors"));
  const at::Tensor& codes = g.at("codes");
  for (int64_t b = 0; b < codes.size(0); ++b) {
    SttStream stream(tiny_stt());
    const Transcript run = run_codes(stream, codes, b);
    const std::string where = "stream " + std::to_string(b);
    expect_matches(run, g.at("text_tokens")[b], g.at("extra_heads")[b], where);
    const auto& words = words_json().at("codes_prefixes")[static_cast<size_t>(b)].back();
    if (!words.is_null()) expect_words(run.words, golden_words(words), where);
  }
}

TEST(SttParity, BatchedCodesGiveTheReferencesTokensAndProbabilities) {
  KYUTAI_CPU_ONLY("models/stt-tiny loads on the CPU here");
  const auto g = read_tensors(golden("codes.safetensors"));
  const at::Tensor& codes = g.at("codes");
  const int64_t n = codes.size(0);
  std::vector<std::unique_ptr<SttStream>> streams;
  for (int64_t b = 0; b < n; ++b)
    streams.push_back(std::make_unique<SttStream>(tiny_stt(), BatchOptions{true, 200.0}));
  std::vector<Transcript> runs(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int64_t b = 0; b < n; ++b)
    threads.emplace_back([&, b] { runs[b] = run_codes(*streams[b], codes, b); });
  for (auto& t : threads) t.join();
  for (int64_t b = 0; b < n; ++b)
    expect_matches(runs[b], g.at("text_tokens")[b], g.at("extra_heads")[b],
                   "batched stream " + std::to_string(b));
}

// The script's path: 13 frames of silence, the audio in 80 ms frames (the last one padded), 7
// frames of silence, each through Mimi's encoder and the step; then the script's words.
TEST(SttParity, AudioGivesTheReferencesCodesTokensAndWords) {
  KYUTAI_CPU_ONLY("models/stt-tiny loads on the CPU here");
  const auto g = read_tensors(golden("audio.safetensors"));
  const at::Tensor audio = g.at("audio").view({-1}).contiguous();
  const MoshiFiles files = locate_moshi(repo());
  auto mimi = Mimi::load(files.mimi.weights, files.mimi.config);
  const SttFormat& f = tiny_stt()->format();
  const int frame = mimi->format().frame_size;
  std::vector<float> padded(static_cast<size_t>(f.silence_prefix_frames * frame), 0.0f);
  padded.insert(padded.end(), audio.data_ptr<float>(), audio.data_ptr<float>() + audio.numel());
  padded.resize((padded.size() + frame - 1) / frame * frame + f.delay_frames * frame, 0.0f);

  MimiEncoder encoder(mimi, f.codebooks);
  SttStream stream(tiny_stt());
  const at::Tensor& want_codes = g.at("codes")[0];  // [32, T]
  ASSERT_EQ(static_cast<int64_t>(padded.size() / frame), want_codes.size(1));
  Transcript run;
  std::vector<int64_t> codes(static_cast<size_t>(f.codebooks));
  for (size_t i = 0, t = 0; i < padded.size(); i += frame, ++t) {
    encoder.encode_frame(padded.data() + i, frame, codes.data());
    const at::Tensor want = want_codes.select(1, static_cast<int64_t>(t)).contiguous();
    ASSERT_EQ(codes, std::vector<int64_t>(want.data_ptr<int64_t>(),
                                          want.data_ptr<int64_t>() + want.numel()))
        << "Mimi codes of frame " << t;
    const SttStream::Step s = stream.step(codes.data(), f.codebooks);
    run.tokens.push_back(s.text_token);
    run.vad.push_back(s.vad);
    run.words.insert(run.words.end(), s.words.begin(), s.words.end());
  }
  for (SttWord& w : stream.finish()) run.words.push_back(w);
  expect_matches(run, g.at("text_tokens")[0], g.at("extra_heads")[0], "audio");
  expect_words(run.words, golden_words(words_json().at("audio")), "audio");
}

// The word rule against the script's on every stream end: the words of the first n tokens of
// each golden stream, n = 1..T, where the script gives any. Where it fails (no end token after
// the last boundary and more than a second left: docs/STT.md) the library's own end is tested
// by test_stt_words.cpp.
TEST(SttParity, WordsAtEveryStreamEndAreTheScripts) {
  const auto stt = tiny_stt();
  const SttWordRule rule = stt_word_rule(LmConfig::from_file(repo() + "/config.json"), 12.5,
                                         stt->format().silence_prefix_frames);
  const auto check = [&](const at::Tensor& tokens, const nlohmann::json& prefixes,
                         const std::string& name) {
    const at::Tensor t = tokens.contiguous();
    ASSERT_EQ(static_cast<int64_t>(prefixes.size()), t.numel()) << name;
    int compared = 0;
    for (int64_t n = 1; n <= t.numel(); ++n) {
      const auto& want = prefixes[static_cast<size_t>(n - 1)];
      if (want.is_null()) continue;
      SttWords words(stt->tokenizer(), rule);
      std::vector<SttWord> got;
      for (int64_t i = 0; i < n; ++i)
        for (SttWord& w : words.push(t[i].item<int64_t>())) got.push_back(w);
      for (SttWord& w : words.finish()) got.push_back(w);
      expect_words(got, golden_words(want), name + " ending after " + std::to_string(n));
      ++compared;
    }
    EXPECT_GT(compared, 0) << name;
  };
  const auto audio = read_tensors(golden("audio.safetensors"));
  check(audio.at("text_tokens")[0], words_json().at("audio_prefixes"), "audio");
  const auto codes = read_tensors(golden("codes.safetensors"));
  for (int64_t b = 0; b < codes.at("text_tokens").size(0); ++b)
    check(codes.at("text_tokens")[b], words_json().at("codes_prefixes")[static_cast<size_t>(b)],
          "stream " + std::to_string(b));
}

}  // namespace
}  // namespace kyutai
