// The mimi-codec tool end to end: its streaming encode of the golden audio gives exactly the
// reference streaming codes, every mode round-trips, and bad arguments fail with a message.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "kyutai/safetensors.h"
#include "wav.h"

namespace kyutai {
namespace {

std::string data(const std::string& p) {
  return std::string(KYUTAI_TEST_DATA) + "/" + p;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/kyutai_cli_" + std::to_string(getpid()) + "_" + name;
}

struct Result {
  int status;
  std::string output;
};

Result run(const std::string& args) {
  const std::string log = temp_path("log.txt");
  const std::string cmd = std::string(MIMI_CODEC) + " " + args + " >" + log + " 2>&1";
  const int raw = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, text.str()};
}

std::vector<int64_t> tensor_i64(const std::string& path, const std::string& name) {
  const auto file = SafetensorsFile::open(path);
  const TensorInfo* info = file->find(name);
  EXPECT_NE(info, nullptr) << name;
  const auto* p = reinterpret_cast<const int64_t*>(file->data(*info));
  return std::vector<int64_t>(p, p + (info->end - info->begin) / 8);
}

const std::string kModel = " --model " + data("golden/mimi_tiny");

TEST(MimiCodecCli, StreamingEncodeGivesTheReferenceStreamingCodes) {
  const std::string codes = temp_path("golden.codes");
  const Result r =
      run("encode " + data("mimi_tiny_audio.wav") + " " + codes + kModel + " --streaming");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(tensor_i64(codes, "codes"),
            tensor_i64(data("golden/mimi_tiny/io.safetensors"), "codes_stream"));
}

TEST(MimiCodecCli, WholeSignalEncodeGivesTheReferenceBatchCodes) {
  const std::string codes = temp_path("batch.codes");
  const Result r = run("encode " + data("mimi_tiny_audio.wav") + " " + codes + kModel);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(tensor_i64(codes, "codes"),
            tensor_i64(data("golden/mimi_tiny/io.safetensors"), "codes_batch"));
}

TEST(MimiCodecCli, RoundTripsKeepTheLength) {
  for (const char* mode : {"", " --streaming"}) {
    const std::string out = temp_path("rt.wav");
    const Result r = run("roundtrip " + data("speechlike.wav") + " " + out + kModel + mode);
    ASSERT_EQ(r.status, 0) << r.output;
    const tools::Wav in = tools::read_wav(data("speechlike.wav"));
    const tools::Wav wav = tools::read_wav(out);
    EXPECT_EQ(wav.sample_rate, 24000);
    EXPECT_EQ(wav.samples.size(), in.samples.size());  // 3 s is a whole number of frames
  }
}

TEST(MimiCodecCli, CodesFileDecodesLater) {
  const std::string codes = temp_path("four.codes"), out = temp_path("four.wav");
  ASSERT_EQ(
      run("encode " + data("speechlike.wav") + " " + codes + kModel + " --codebooks 4").status, 0);
  const Result r = run("decode " + codes + " " + out + kModel + " --streaming");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(tools::read_wav(out).samples.size(), 72000u);
}

TEST(MimiCodecCli, ErrorsAreClear) {
  EXPECT_EQ(run("").status, 2);
  EXPECT_EQ(run("transcode a b").status, 2);
  Result r = run("roundtrip " + data("speechlike.wav") + " " + temp_path("x.wav"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("--model is required"), std::string::npos) << r.output;
  r = run("roundtrip " + data("speechlike.wav") + " " + temp_path("x.wav") +
          " --model no/such-repo");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("not in the Hugging Face cache"), std::string::npos) << r.output;
  r = run("encode " + data("speechlike.wav") + " " + temp_path("x.codes") + kModel +
          " --codebooks 9");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("between 1 and 8"), std::string::npos) << r.output;
  r = run("decode " + data("speechlike.wav") + " " + temp_path("x.wav") + kModel);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("not a valid safetensors file"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace kyutai
