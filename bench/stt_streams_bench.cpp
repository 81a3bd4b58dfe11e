// Live Kyutai STT streams through the library's public path, as kyutaistt runs them: N threads,
// each with its own MimiEncoder and batched SttStream on one Mimi and one STT model (random
// weights of a configuration's real shapes), each frame through SttStream::step(encoder, audio):
// the batch encodes its frames together and steps, with one wait. Each thread is a live capture:
// its frame k arrives at start + offset + k * 80 ms (the streams' offsets spread over --spread-ms),
// and it encodes and steps each frame as soon as it has arrived and the previous one is done. A
// stream keeps up when no frame waits behind the one before it. The last line:
//   stt-streams streams=<N> weights=<w> kv=<model|int8> threads=<t> frame_ms=<median>
//      p95_ms=<x> max_ms=<x> behind_ms=<x> batch=<mean> run_ms=<median> realtime=<yes|no>
// frame_ms: from a frame's arrival to its words (medians over all streams' frames after the
// warm-up); behind_ms: the most a frame's start waited for the previous frame; run_ms: the batched
// encode + step that carried a frame (median); realtime: yes
// when the 95th percentile is under 80 ms and no frame started more than one frame late.
//
// With --paced 0 each frame arrives as soon as the one before is done (the runs back to back,
// as lm-bench's frames), to tell the cost of the path from that of idle cores between frames.
//
//   build/bench/stt-streams-bench --streams 4 --weights int4 [--config stt_1b_config.json]
//                                 [--seconds 20] [--threads 2] [--spread-ms 0] [--warmup 12]
//                                 [--paced 1] [--kv model]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kyutai/mimi.h"
#include "kyutai/runtime.h"
#include "kyutai/stt.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string config = KYUTAI_SOURCE_ROOT "/bench/configs/stt_1b_config.json";
  kyutai::WeightFormat weights = kyutai::WeightFormat::Int4;
  int streams = 4;
  int threads = 2;
  double seconds = 20;
  double spread_ms = 0;
  int warmup = 12;  // frames of each stream not counted
  bool paced = true;  // false: each frame arrives when the one before is done
  kyutai::KvCacheFormat kv = kyutai::KvCacheFormat::Model;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--config")
      o.config = v;
    else if (a == "--weights")
      o.weights = kyutai::parse_weight_format(v);
    else if (a == "--streams")
      o.streams = std::atoi(v.c_str());
    else if (a == "--threads")
      o.threads = std::atoi(v.c_str());
    else if (a == "--seconds")
      o.seconds = std::atof(v.c_str());
    else if (a == "--spread-ms")
      o.spread_ms = std::atof(v.c_str());
    else if (a == "--warmup")
      o.warmup = std::atoi(v.c_str());
    else if (a == "--paced")
      o.paced = std::atoi(v.c_str()) != 0;
    else if (a == "--kv" && (v == "model" || v == "int8"))
      o.kv = v == "int8" ? kyutai::KvCacheFormat::Int8 : kyutai::KvCacheFormat::Model;
    else
      return false;
  }
  return argc % 2 == 1 && o.streams > 0 && o.seconds > 0 && o.warmup >= 0;
}

// What one stream saw, frame by frame after the warm-up.
struct StreamLog {
  std::vector<double> frame_ms;  // arrival -> words
  std::vector<double> run_ms;    // the batched encode + step that carried the frame
  double behind_ms = 0;          // the most a frame waited for the one before it
  double batch = 0;
  int64_t frames = 0;
};

void run_stream(const std::shared_ptr<const kyutai::Mimi>& mimi,
                const std::shared_ptr<const kyutai::Stt>& stt, const Options& o, int index,
                Clock::time_point start, StreamLog& log) {
  const kyutai::BatchOptions batch{true, 5.0};
  kyutai::MimiEncoder encoder(mimi, stt->format().codebooks);
  kyutai::SttStream stream(stt, batch, o.kv);
  const int frame = mimi->format().frame_size;
  const auto period = std::chrono::duration<double, std::milli>(1000.0 / mimi->format().frame_rate);
  const auto offset = std::chrono::duration<double, std::milli>(
      o.streams > 1 ? o.spread_ms * index / (o.streams - 1) : 0.0);
  const int64_t frames = static_cast<int64_t>(o.seconds * mimi->format().frame_rate);
  std::vector<float> pcm(static_cast<size_t>(frame));
  for (int64_t k = 0; k < frames; ++k) {
    const auto arrival =
        o.paced ? start + std::chrono::duration_cast<Clock::duration>(offset + k * period)
                : Clock::now();
    std::this_thread::sleep_until(arrival);
    const auto begun = Clock::now();
    for (int i = 0; i < frame; ++i)  // each stream its own tone
      pcm[i] = 0.1f * std::sin(0.01f * (index + 1) * static_cast<float>(k * frame + i));
    const kyutai::SttStream::Step step = stream.step(encoder, pcm.data(), pcm.size());
    if (k < o.warmup) continue;
    log.frame_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - arrival).count());
    log.behind_ms =
        std::max(log.behind_ms, std::chrono::duration<double, std::milli>(begun - arrival).count());
    log.batch += step.batch_size;
    log.run_ms.push_back(step.step_ms);
    ++log.frames;
  }
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * (v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (!parse(argc, argv, o)) throw std::invalid_argument("bad arguments");
  } catch (const std::exception&) {
    std::fprintf(stderr,
                 "usage: stt-streams-bench [--config stt_config.json] [--weights int4|int8|...]\n"
                 "                         [--streams N] [--seconds S] [--threads N]\n"
                 "                         [--spread-ms MS] [--warmup FRAMES] [--paced 0|1]\n"
                 "                         [--kv model|int8]\n");
    return 2;
  }
  try {
    kyutai::set_num_threads(o.threads);
    const auto mimi = kyutai::Mimi::random("", 77);
    const auto stt = kyutai::Stt::random(o.config, 1234, o.weights);
    std::vector<StreamLog> logs(static_cast<size_t>(o.streams));
    std::vector<std::thread> threads;
    const Clock::time_point start = Clock::now() + std::chrono::milliseconds(200);
    for (int i = 0; i < o.streams; ++i)
      threads.emplace_back(run_stream, mimi, stt, std::cref(o), i, start, std::ref(logs[i]));
    for (auto& t : threads) t.join();
    std::vector<double> all, runs;
    double behind = 0, batch = 0;
    int64_t frames = 0;
    for (const StreamLog& log : logs) {
      all.insert(all.end(), log.frame_ms.begin(), log.frame_ms.end());
      runs.insert(runs.end(), log.run_ms.begin(), log.run_ms.end());
      behind = std::max(behind, log.behind_ms);
      batch += log.batch;
      frames += log.frames;
    }
    if (all.empty()) throw std::runtime_error("no frame after the warm-up: raise --seconds");
    const double p95 = percentile(all, 0.95);
    const double period = 1000.0 / mimi->format().frame_rate;
    std::printf(
        "stt-streams streams=%d weights=%s kv=%s threads=%d frame_ms=%.1f p95_ms=%.1f "
        "max_ms=%.1f behind_ms=%.1f batch=%.2f run_ms=%.1f realtime=%s\n",
        o.streams, kyutai::weight_format_name(stt->weight_format()),
        o.kv == kyutai::KvCacheFormat::Int8 ? "int8" : "model", kyutai::num_threads(),
        percentile(all, 0.5), p95, percentile(all, 1.0), behind, batch / frames,
        percentile(runs, 0.5), p95 < period && behind < period ? "yes" : "no");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stt-streams-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
