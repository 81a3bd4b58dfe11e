// Elements of one process that use the same model share one copy of the weights: resident
// memory with 1 and with 4 encoders (and then 4 decoders) on a model with the released Mimi's
// size (random weights, 317 MB of float32), and with 1 and 2 moshilm on a 260 MB LM.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "gst_test_util.h"
#include "kyutai/mimi.h"
#include "kyutai/moshi.h"

namespace gstmimi::test {
namespace {

constexpr int kMimiRate = 24000, kMimiFrame = 1920;
constexpr double kMiB = 1024.0 * 1024.0;

// VmRSS of this process, in bytes.
double resident_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  return 0;
}

class WeightSharing : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    model_ = dir_->path("mimi.safetensors");
    const std::string config = source_root() + "/bench/configs/mimi_config.json";
    // In a child process, so that the memory used to make the model is not part of ours.
    const pid_t child = fork();
    if (child == 0) {
      kyutai::Mimi::random(config, 1)->save(model_);
      _exit(0);
    }
    int status = -1;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "could not write " << model_;
    // The element finds the configuration beside the weights.
    std::filesystem::copy_file(config, dir_->path("config.json"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  // A started element with one frame pushed through it, so its weights have been touched.
  std::unique_ptr<Harnessed> start(const std::string& factory) {
    auto e = std::make_unique<Harnessed>(factory, Properties{{"model", model_}, {"threads", "2"}});
    GstBuffer* input;
    if (factory == "mimienc") {
      gst_harness_set_src_caps_str(e->h, enc_sink_caps(kMimiRate).c_str());
      const std::vector<float> silence(kMimiFrame, 0.0f);
      input = audio_buffer(silence.data(), silence.size(), 0);
    } else {
      gst_harness_set_src_caps_str(
          e->h, "audio/x-mimi,rate=24000,channels=1,frame-size=1920,codebooks=8,cardinality=2048");
      input = codes_buffer(std::vector<int64_t>(8, 1), 0);
    }
    EXPECT_EQ(gst_harness_push(e->h, input), GST_FLOW_OK);
    std::vector<GstBuffer*> out = e->pull_all();
    EXPECT_EQ(out.size(), 1u);
    unref_all(out);
    return e;
  }

  static inline TempDir* dir_ = nullptr;
  static inline std::string model_;
};

TEST_F(WeightSharing, FourEncodersOrDecodersHoldOneCopyOfTheWeights) {
  const double weights = static_cast<double>(std::filesystem::file_size(model_));
  std::vector<std::unique_ptr<Harnessed>> elements;
  const double rss0 = resident_bytes();
  elements.push_back(start("mimienc"));
  const double rss1 = resident_bytes();
  for (int i = 0; i < 3; ++i) elements.push_back(start("mimienc"));
  const double rss4 = resident_bytes();
  for (int i = 0; i < 4; ++i) elements.push_back(start("mimidec"));
  const double rss8 = resident_bytes();

  const double one = rss1 - rss0, three_more = rss4 - rss1, decoders = rss8 - rss4;
  std::printf(
      "weights %.0f MiB; resident: +%.0f MiB for 1 encoder, +%.0f MiB for 3 more "
      "encoders, +%.0f MiB for 4 decoders (%.0f MiB in all)\n",
      weights / kMiB, one / kMiB, three_more / kMiB, decoders / kMiB, rss8 / kMiB);
  RecordProperty("weights_mib", static_cast<int>(weights / kMiB));
  RecordProperty("rss_1_encoder_mib", static_cast<int>(one / kMiB));
  RecordProperty("rss_3_more_encoders_mib", static_cast<int>(three_more / kMiB));
  RecordProperty("rss_4_decoders_mib", static_cast<int>(decoders / kMiB));

  // The first encoder maps the weights and touches its half of them; three more encoders
  // must cost far less than three more copies (each stream only adds its own state).
  EXPECT_GT(one, 0.25 * weights);
  EXPECT_LT(three_more, 0.2 * one);
  // The decoders touch the other half of the same copy, and no second copy.
  EXPECT_LT(decoders, weights);
}

// Two moshilm elements on one LM of 65 M parameters (random weights, 260 MB of float32, made
// from the lm_tiny configuration with wider layers).
class LmSharing : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string tiny = data_path("golden/lm_tiny");
    std::ifstream in(tiny + "/config.json");
    std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (auto [from, to] :
         {std::pair<std::string, std::string>{"\"dim\": 32", "\"dim\": 512"},
          {"\"num_layers\": 2", "\"num_layers\": 4"},
          {"\"depformer_dim\": 32", "\"depformer_dim\": 512"},
          {"\"depformer_dim_feedforward\": 64", "\"depformer_dim_feedforward\": 2048"}}) {
      const size_t at = config.find(from);
      ASSERT_NE(at, std::string::npos) << from;
      config.replace(at, from.size(), to);
    }
    std::ofstream(dir_->path("config.json")) << config;
    std::filesystem::copy_file(tiny + "/tokenizer.model", dir_->path("tokenizer.model"));
    const pid_t child = fork();  // keeps the memory used to make the model out of this process
    if (child == 0) {
      kyutai::Moshi::random(dir_->path("config.json"), 1, kyutai::WeightFormat::Float32)
          ->save_weights(dir_->path("model.safetensors"));
      _exit(0);
    }
    int status = -1;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // A started moshilm that has run two steps, so all its weights have been read.
  static std::unique_ptr<Harnessed> start() {
    auto e = std::make_unique<Harnessed>(
        "moshilm", Properties{{"model", dir_->str()}, {"dtype", "float32"}, {"threads", "2"}});
    gst_harness_set_src_caps_str(
        e->h, "audio/x-mimi,rate=24000,channels=1,frame-size=1920,codebooks=8,cardinality=64");
    for (int s = 0; s < 2; ++s)
      EXPECT_EQ(
          gst_harness_push(e->h, codes_buffer(std::vector<int64_t>(8, 1), s * 80 * GST_MSECOND)),
          GST_FLOW_OK);
    std::vector<GstBuffer*> out = e->pull_all();
    EXPECT_EQ(out.size(), 1u);
    unref_all(out);
    return e;
  }
  static inline TempDir* dir_ = nullptr;
};

TEST_F(LmSharing, TwoElementsHoldOneCopyOfTheWeights) {
  const double weights =
      static_cast<double>(std::filesystem::file_size(dir_->path("model.safetensors")));
  const double rss0 = resident_bytes();
  auto first = start();
  const double rss1 = resident_bytes();
  auto second = start();
  const double rss2 = resident_bytes();
  std::printf("LM weights %.0f MiB; resident: +%.0f MiB for 1 moshilm, +%.0f MiB for a second\n",
              weights / kMiB, (rss1 - rss0) / kMiB, (rss2 - rss1) / kMiB);
  EXPECT_GT(rss1 - rss0, 0.5 * weights);
  EXPECT_LT(rss2 - rss1, 0.1 * weights);
}

}  // namespace
}  // namespace gstmimi::test
