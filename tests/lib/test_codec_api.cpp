// The public torch-free API: model lookup (files, directories, the Hugging Face cache), shared
// weights, stream reset, devices.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "kyutai/device.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/mimi.h"
#include "test_util.h"

namespace kyutai {
namespace {

namespace fs = std::filesystem;
using test::data_path;
using test::TempDir;

std::string tiny_dir() {
  return data_path("golden/mimi_tiny");
}

// Sets an environment variable for the lifetime of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_.empty())
      unsetenv(name_);
    else
      setenv(name_, old_.c_str(), 1);
  }

 private:
  const char* name_;
  std::string old_;
};

TEST(Hub, CacheDirectoryFollowsHuggingfaceHub) {
  ScopedEnv home("HOME", "/home/someone");
  unsetenv("HF_HUB_CACHE");
  unsetenv("HUGGINGFACE_HUB_CACHE");
  unsetenv("HF_HOME");
  unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(hf_hub_cache(), "/home/someone/.cache/huggingface/hub");
  {
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(hf_hub_cache(), "/xdg/huggingface/hub");
    ScopedEnv hf_home("HF_HOME", "/hf");
    EXPECT_EQ(hf_hub_cache(), "/hf/hub");
    ScopedEnv hub("HF_HUB_CACHE", "/hub-cache");
    EXPECT_EQ(hf_hub_cache(), "/hub-cache");
  }
}

TEST(Hub, RepoIds) {
  EXPECT_TRUE(is_repo_id("kyutai/moshiko-pytorch-bf16"));
  EXPECT_FALSE(is_repo_id("/abs/path"));
  EXPECT_FALSE(is_repo_id("./rel/path"));
  EXPECT_FALSE(is_repo_id("a/b/c"));
  EXPECT_FALSE(is_repo_id("plain"));
}

TEST(Hub, FindsASnapshotThroughRefsMain) {
  TempDir cache;
  const fs::path repo = cache / "models--kyutai--mimi-test";
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots" / commit);
  std::ofstream(repo / "refs" / "main") << commit << "\n";
  // A snapshot file is a symlink into blobs/ in a real cache.
  fs::create_directories(repo / "blobs");
  fs::copy_file(fs::path(tiny_dir()) / "model.safetensors", repo / "blobs" / "abc");
  fs::create_symlink("../../blobs/abc", repo / "snapshots" / commit / kMimiWeightsName);
  ScopedEnv env("HF_HUB_CACHE", cache.str());
  const auto snapshot = hf_snapshot("kyutai/mimi-test");
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(fs::path(*snapshot), repo / "snapshots" / commit);
  EXPECT_FALSE(hf_snapshot("kyutai/other").has_value());
  const MimiFiles files = locate_mimi("kyutai/mimi-test");
  EXPECT_EQ(fs::path(files.weights).filename(), kMimiWeightsName);
  EXPECT_TRUE(files.config.empty());  // no Mimi config: the released configuration
}

TEST(Hub, LocatesMimiInDirectoriesAndFiles) {
  MimiFiles files = locate_mimi(tiny_dir());
  EXPECT_EQ(fs::path(files.weights).filename(), "model.safetensors");
  EXPECT_EQ(fs::path(files.config).filename(), "config.json");
  files = locate_mimi(tiny_dir() + "/model.safetensors");
  EXPECT_EQ(fs::path(files.config).filename(), "config.json");  // found beside the weights

  // A Kyutai-style repository whose config.json names the Mimi files.
  TempDir repo;
  std::ofstream(repo / "config.json") << R"({"dim": 32, "mimi_name": "codec.safetensors",
                                             "mimi_config_name": "codec.json"})";
  fs::copy_file(fs::path(tiny_dir()) / "model.safetensors", repo / "codec.safetensors");
  fs::copy_file(fs::path(tiny_dir()) / "config.json", repo / "codec.json");
  files = locate_mimi(repo.str());
  EXPECT_EQ(files.weights, (repo / "codec.safetensors").string());
  EXPECT_EQ(files.config, (repo / "codec.json").string());
  EXPECT_NO_THROW(Mimi::load(files.weights, files.config));
}

TEST(Hub, MissingModelsSayWhereTheyLooked) {
  TempDir empty;
  try {
    locate_mimi(empty.str());
    FAIL();
  } catch (const NotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find(kMimiWeightsName), std::string::npos) << e.what();
  }
  ScopedEnv env("HF_HUB_CACHE", empty.str());
  try {
    locate_mimi("kyutai/absent");
    FAIL();
  } catch (const NotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find(empty.str()), std::string::npos) << e.what();
  }
}

TEST(CodecApi, SharedLoadsReturnOneCopy) {
  const MimiFiles files = locate_mimi(tiny_dir());
  const auto a = Mimi::load_shared(files.weights, files.config);
  const auto b = Mimi::load_shared(tiny_dir() + "/./model.safetensors", files.config);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(Mimi::load(files.weights, files.config).get(), a.get());
}

// Fractions in (0, 1], non-decreasing, ending at 1; a copy from the shared cache reports none.
TEST(CodecApi, LoadingReportsProgress) {
  const MimiFiles files = locate_mimi(tiny_dir());
  std::vector<double> fractions;
  const LoadProgress progress = [&](double f) { fractions.push_back(f); };
  const auto mimi = Mimi::load_shared(files.weights, files.config, "cpu", progress);
  ASSERT_GT(fractions.size(), 10u);  // one per tensor
  EXPECT_GT(fractions.front(), 0.0);
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
  fractions.clear();
  EXPECT_EQ(Mimi::load_shared(files.weights, files.config, "cpu", progress).get(), mimi.get());
  EXPECT_TRUE(fractions.empty());
}

TEST(CodecApi, SavedRandomModelLoadsBack) {
  const std::string config = data_path("golden/mimi_tiny/config.json");
  const auto random = Mimi::random(config, 42);
  TempDir dir;
  const std::string path = (dir / "random.safetensors").string();
  random->save(path);
  const auto loaded = Mimi::load(path, config);
  const std::vector<float> pcm(480, 0.1f);
  EXPECT_EQ(loaded->encode(pcm.data(), pcm.size(), 8), random->encode(pcm.data(), pcm.size(), 8));
  const std::vector<int64_t> codes(8 * 3, 5);
  EXPECT_EQ(loaded->decode(codes.data(), 8, 3), random->decode(codes.data(), 8, 3));
}

TEST(CodecApi, EncoderResetStartsANewStream) {
  const MimiFiles files = locate_mimi(tiny_dir());
  const auto mimi = Mimi::load_shared(files.weights, files.config);
  const int frame = mimi->format().frame_size;
  const at::Tensor audio = read_tensors(data_path("golden/mimi_tiny/io.safetensors")).at("audio");
  const float* pcm = audio.data_ptr<float>();
  MimiEncoder encoder(mimi, 8);
  auto run = [&](MimiEncoder& enc) {
    std::vector<int64_t> all;
    std::vector<int64_t> codes(8);
    for (int f = 0; f < 12; ++f) {
      enc.encode_frame(pcm + f * frame, frame, codes.data());
      all.insert(all.end(), codes.begin(), codes.end());
    }
    return all;
  };
  const auto first = run(encoder);
  encoder.reset();
  EXPECT_EQ(run(encoder), first);
  std::vector<int64_t> codes(8);
  EXPECT_THROW(encoder.encode_frame(pcm, frame - 1, codes.data()), InputError);
}

// Batched encoders, each in its own thread, encode their frames together and get the codes they
// get alone; a bad frame fails only its own call.
TEST(CodecApi, BatchedEncodersGetTheirSoloCodes) {
  const MimiFiles files = locate_mimi(tiny_dir());
  const auto mimi = Mimi::load_shared(files.weights, files.config);
  const int frame = mimi->format().frame_size;
  const at::Tensor audio = read_tensors(data_path("golden/mimi_tiny/io.safetensors")).at("audio");
  const int frames = static_cast<int>(audio.size(2) / frame) - 2;
  auto run = [&](MimiEncoder& enc, int stream, int* widest) {
    std::vector<int64_t> all, codes(8);
    const float* pcm = audio.data_ptr<float>() + stream * frame;  // each stream its own audio
    for (int f = 0; f < frames; ++f) {
      enc.encode_frame(pcm + f * frame, frame, codes.data());
      all.insert(all.end(), codes.begin(), codes.end());
      *widest = std::max(*widest, enc.last_batch_size());
    }
    return all;
  };
  constexpr int kStreams = 3;
  std::vector<std::vector<int64_t>> together(kStreams), alone(kStreams);
  std::vector<int> widest(kStreams, 0);
  {
    std::vector<std::unique_ptr<MimiEncoder>> encoders;
    for (int i = 0; i < kStreams; ++i)  // a long wait: every frame of every stream joins
      encoders.push_back(std::make_unique<MimiEncoder>(mimi, 8, BatchOptions{true, 1000.0}));
    std::vector<std::thread> threads;
    std::atomic<int> ready{0};  // all start together, so that every frame finds the others
    for (int i = 0; i < kStreams; ++i)
      threads.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < kStreams) std::this_thread::yield();
        together[i] = run(*encoders[i], i, &widest[i]);
      });
    for (auto& t : threads) t.join();
  }
  for (int i = 0; i < kStreams; ++i) {
    MimiEncoder solo(mimi, 8);
    int one = 0;
    alone[i] = run(solo, i, &one);
    EXPECT_EQ(one, 1);
    EXPECT_EQ(together[i], alone[i]) << "stream " << i;
    EXPECT_EQ(widest[i], kStreams) << "stream " << i;
  }
  MimiEncoder batched(mimi, 8, BatchOptions{true, 1.0});
  std::vector<int64_t> codes(8);
  EXPECT_THROW(batched.encode_frame(audio.data_ptr<float>(), frame + 1, codes.data()), InputError);
  EXPECT_NO_THROW(batched.encode_frame(audio.data_ptr<float>(), frame, codes.data()));
}

// A NaN, an infinity or an absurd sample must not poison the stream: it is encoded as a 0 (or
// clamped), so the codes after it are those after a frame of zeros, not 0 for 250 frames.
TEST(CodecApi, NonFiniteSamplesDoNotPoisonTheStream) {
  const MimiFiles files = locate_mimi(tiny_dir());
  const auto mimi = Mimi::load_shared(files.weights, files.config);
  const int frame = mimi->format().frame_size;
  const at::Tensor audio = read_tensors(data_path("golden/mimi_tiny/io.safetensors")).at("audio");
  const float* pcm = audio.data_ptr<float>();
  auto run = [&](const std::vector<float>& first, size_t* replaced) {
    MimiEncoder encoder(mimi, 8);
    std::vector<int64_t> all, codes(8);
    *replaced = encoder.encode_frame(first.data(), frame, codes.data());
    for (int f = 1; f < 20; ++f) {
      EXPECT_EQ(encoder.encode_frame(pcm + f * frame, frame, codes.data()), 0u);
      all.insert(all.end(), codes.begin(), codes.end());
    }
    return all;
  };
  size_t replaced = 0;
  const auto after_zeros = run(std::vector<float>(frame, 0.f), &replaced);
  EXPECT_EQ(replaced, 0u);
  std::vector<float> bad(frame, 0.f);
  bad[0] = std::nanf("");
  bad[1] = INFINITY;
  bad[2] = -INFINITY;
  EXPECT_EQ(run(bad, &replaced), after_zeros);
  EXPECT_EQ(replaced, 3u);
  // An absurd sample is clamped: the codes after it are those after the largest sane sample.
  bad.assign(frame, 0.f);
  bad[5] = kMaxSampleMagnitude;
  const auto after_clamped = run(bad, &replaced);
  EXPECT_EQ(replaced, 0u);
  EXPECT_NE(std::count(after_clamped.begin(), after_clamped.end(), 0),
            static_cast<long>(after_clamped.size()));
  bad[5] = 1e30f;
  EXPECT_EQ(run(bad, &replaced), after_clamped);
  EXPECT_EQ(replaced, 1u);

  // The whole-signal path sanitizes the same way: its codes are those of the signal with the
  // NaN as 0 and the absurd sample clamped.
  std::vector<float> signal(pcm, pcm + 4 * frame);
  signal[3] = std::nanf("");
  signal[4] = -1e30f;
  size_t whole_replaced = 0;
  const auto codes = mimi->encode(signal.data(), signal.size(), 8, &whole_replaced);
  EXPECT_EQ(whole_replaced, 2u);
  signal[3] = 0.f;
  signal[4] = -kMaxSampleMagnitude;
  EXPECT_EQ(codes, mimi->encode(signal.data(), signal.size(), 8, &whole_replaced));
  EXPECT_EQ(whole_replaced, 0u);
}

TEST(CodecApi, DecoderResetStartsANewStream) {
  const MimiFiles files = locate_mimi(tiny_dir());
  const auto mimi = Mimi::load_shared(files.weights, files.config);
  MimiDecoder decoder(mimi);
  std::vector<int64_t> codes = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> a(48), b(48), c(48);
  decoder.decode_frame(codes.data(), 8, a.data());
  decoder.decode_frame(codes.data(), 8, b.data());
  decoder.reset();
  decoder.decode_frame(codes.data(), 8, c.data());
  EXPECT_EQ(a, c);
  EXPECT_NE(a, b);  // the second frame has history
  codes[0] = 64;
  EXPECT_THROW(decoder.decode_frame(codes.data(), 8, a.data()), InputError);
}

TEST(CodecApi, DevicesAreChecked) {
  EXPECT_NO_THROW(check_device("cpu"));
  EXPECT_THROW(check_device("tpu"), ConfigError);
  EXPECT_THROW(check_device("not a device"), ConfigError);
  if (at::hasCUDA()) {
    EXPECT_NO_THROW(check_device("cuda:0"));
  } else {
    try {
      check_device("cuda:0");
      FAIL();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("CUDA build"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace kyutai
