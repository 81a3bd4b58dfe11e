// Elements of one process that use the same model share one copy of the weights: resident
// memory with 1 and with 4 encoders (and then 4 decoders) on a model with the released Mimi's
// size (random weights, 317 MB of float32).
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gst_test_util.h"
#include "kyutai/codec.h"

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

}  // namespace
}  // namespace gstmimi::test
