// Moshi LM benchmark on random weights: median milliseconds per LMGen step (greedy), split
// between the temporal transformer and the depformer, for one weight format and a starting
// position in the KV cache. Each setting's result ends in a machine-readable line (the last
// setting's is the last line):
//   lm step_ms=<x> main_ms=<y> depformer_ms=<z> threads=<n> weights=<w> position=<p> gbps=<g>
//      batch=<b> device=<d> kv=<model|int8>
// where gbps is the weight and KV-cache bytes one step reads, divided by the step time. With
// --batch B, each step is one LmGen::step_batch over B conversations (each with its own KV
// cache, all at the same position), and gbps counts the weights once and B KV caches. With
// --with-mimi, each timed frame is a whole conversation frame on the real shapes: Mimi encodes
// 80 ms of audio, the LM steps, Mimi decodes Moshi's codes (Mimi on the CPU whatever --device
// says); with --batch B, for B streams (one batched encode, one batched step, B decodes). The
// last line is then
//   conversation frame_ms=<x> rtf=<x/80> weights=<w> threads=<n> batch=<B>
// --position and --batch take comma-separated lists: every combination is measured on one model,
// in turn, for --rounds rounds, with the memory read bandwidth (the floor) measured between
// rounds, so that the two sides of a comparison see the same machine. --kv int8 runs the
// temporal transformer's KV cache in int8 (model/transformer.h). A speech-to-text configuration
// (bench/configs/stt_*.json: dep_q 0) steps without a depformer (depformer_ms is 0), computes
// its extra heads as an STT stream does, and with --with-mimi times Mimi's encoding and the
// step (there is no voice to decode).
#include <ATen/ATen.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kyutai/device.h"
#include "kyutai/kernels/thread_pool.h"
#include "kyutai/mimi.h"
#include "kyutai/model/lm.h"
#include "kyutai/model/lm_generate.h"
#include "kyutai/model/mimi_model.h"
#include "kyutai/model/torch_compat.h"
#include "kyutai/runtime.h"

namespace {

struct Options {
  std::string config = KYUTAI_SOURCE_ROOT "/bench/configs/lm_mid_config.json";
  kyutai::WeightFormat weights = kyutai::WeightFormat::Float32;
  std::string device = "cpu";
  int threads = 0;
  int steps = 20;
  int warmup = 3;
  std::vector<int64_t> positions = {0};
  std::vector<int> batches = {1};
  int rounds = 1;
  bool with_mimi = false;
  std::vector<kyutai::KvCacheFormat> kvs = {kyutai::KvCacheFormat::Model};
};

// "0,2999" -> {0, 2999}.
template <class T>
std::vector<T> parse_list(const std::string& text) {
  std::vector<T> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    out.push_back(static_cast<T>(std::stoll(text.substr(at, comma - at))));
    at = comma + 1;
  }
  return out;
}

// "model,int8" -> {Model, Int8}.
std::vector<kyutai::KvCacheFormat> parse_kv_list(const std::string& text) {
  std::vector<kyutai::KvCacheFormat> out;
  std::string rest = text + ",";
  for (size_t comma; (comma = rest.find(',')) != std::string::npos; rest.erase(0, comma + 1)) {
    const std::string name = rest.substr(0, comma);
    if (name != "model" && name != "int8") throw std::invalid_argument("bad --kv");
    out.push_back(name == "int8" ? kyutai::KvCacheFormat::Int8 : kyutai::KvCacheFormat::Model);
  }
  return out;
}

const char* kv_name(kyutai::KvCacheFormat kv) {
  return kv == kyutai::KvCacheFormat::Int8 ? "int8" : "model";
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--with-mimi") {
      o.with_mimi = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (a == "--config")
      o.config = v;
    else if (a == "--weights" || a == "--dtype")
      o.weights = kyutai::parse_weight_format(v);
    else if (a == "--threads")
      o.threads = std::atoi(v.c_str());
    else if (a == "--steps")
      o.steps = std::atoi(v.c_str());
    else if (a == "--warmup")
      o.warmup = std::atoi(v.c_str());
    else if (a == "--position")
      o.positions = parse_list<int64_t>(v);
    else if (a == "--batch")
      o.batches = parse_list<int>(v);
    else if (a == "--rounds")
      o.rounds = std::atoi(v.c_str());
    else if (a == "--device")
      o.device = v;
    else if (a == "--kv")
      o.kvs = parse_kv_list(v);
    else
      return false;
  }
  // --with-mimi times one setting (its batch: that many streams).
  const bool positions_ok =
      std::all_of(o.positions.begin(), o.positions.end(), [](int64_t p) { return p >= 0; });
  const bool batches_ok =
      std::all_of(o.batches.begin(), o.batches.end(), [](int b) { return b > 0; });
  const bool single = o.positions.size() * o.batches.size() * o.kvs.size() == 1;
  return o.steps > 0 && o.rounds > 0 && positions_ok && batches_ok && (!o.with_mimi || single);
}

double resident_gb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1e6;  // kilobytes -> GB
}

// KV-cache bytes the temporal transformer reads in a step at `position` (an int8 cache: a
// byte per value and a float32 scale per head and position).
int64_t kv_bytes(const kyutai::LmModel& model, kyutai::KvCacheFormat kv, int64_t position) {
  const kyutai::TransformerConfig& t = model.config().transformer;
  const int64_t keys = std::min<int64_t>(position + 1, t.context.value_or(position + 1));
  const int64_t per_key = kv == kyutai::KvCacheFormat::Int8
                              ? t.d_model + 4 * t.num_heads
                              : t.d_model * static_cast<int64_t>(at::elementSize(model.dtype()));
  return 2 * t.num_layers * keys * per_key;
}

// Mimi around the LM, on random weights of the released configuration, for `batch` streams:
// the users' sides are encoded together (one pass over the encoder's weights for all, as
// batched MimiEncoders do; their codes replace the benchmark's), Moshi's codes are decoded
// stream after stream (the decoder has no batched path).
class Conversation {
 public:
  Conversation(const kyutai::LmConfig& lm, int batch)
      : mimi_(kyutai::Mimi::random("", 77)),
        codebooks_(std::max(lm.dep_q, lm.user_codebooks())),
        pcm_(static_cast<size_t>(mimi_->format().frame_size)),
        card_(lm.card),
        speaks_(lm.dep_q > 0) {
    for (int b = 0; b < batch; ++b) {
      encoders_.push_back(mimi_->model().new_encoder_state(codebooks_));
      decoders_.push_back(std::make_unique<kyutai::MimiDecoder>(mimi_));
    }
  }
  void encode(int frame, std::vector<std::vector<int64_t>>& user) {
    const int64_t size = mimi_->format().frame_size, batch = encoders_.size();
    at::Tensor frames = at::empty({batch, 1, size});
    float* pcm = frames.data_ptr<float>();
    for (int64_t i = 0; i < batch * size; ++i)  // each stream its own phase
      pcm[i] = 0.1f * std::sin(0.05f * (frame * size + i));
    std::vector<kyutai::MimiEncoderState*> states;
    for (auto& state : encoders_) states.push_back(&state);
    const at::Tensor codes = mimi_->model().encode_step(frames, states).contiguous();
    const auto c = codes.accessor<int64_t, 3>();  // [batch, codebooks, 1]
    // A small test configuration may have fewer codes than Mimi's 2048.
    for (int64_t b = 0; b < batch; ++b)
      for (size_t k = 0; k < user[b].size(); ++k)
        user[b][k] = c[b][static_cast<int64_t>(k)][0] % card_;
  }
  void decode(const std::vector<kyutai::LmGenRow>& rows) {
    if (!speaks_) return;  // a speech-to-text model writes only text
    for (size_t b = 0; b < rows.size(); ++b) {
      // Before Moshi's first frame (max_delay steps) the decoder still runs, on silence codes.
      std::vector<int64_t> audio(codebooks_ / 2 + 1, 0);
      if (rows[b].result) audio.assign(rows[b].result->begin() + 1, rows[b].result->end());
      decoders_[b]->decode_frame(audio.data(), static_cast<int>(audio.size()), pcm_.data());
    }
  }

 private:
  std::shared_ptr<const kyutai::Mimi> mimi_;
  int codebooks_;
  std::vector<kyutai::MimiEncoderState> encoders_;
  std::vector<std::unique_ptr<kyutai::MimiDecoder>> decoders_;
  std::vector<float> pcm_;
  int64_t card_;
  bool speaks_;
};

// One benchmarked setting: `batch` conversations whose KV caches hold `position` steps.
struct Run {
  explicit Run(const kyutai::LmModel& model, kyutai::KvCacheFormat kv) : gen(model, kv) {}
  kyutai::LmGen gen;
  int64_t position = 0;
  int batch = 1;
  std::vector<kyutai::LmGenState> states;
  std::vector<double> step_ms, main_ms, dep_ms, frame_ms;
  int64_t steps = 0;
};

Run make_run(const kyutai::LmModel& model, kyutai::KvCacheFormat kv, int64_t position, int batch) {
  Run run(model, kv);
  const kyutai::LmGen& gen = run.gen;
  run.position = position;
  run.batch = batch;
  for (int b = 0; b < batch; ++b) {
    run.states.push_back(gen.new_state(static_cast<uint64_t>(b)));
    // The step runs with `position` steps already in the temporal transformer's KV cache (their
    // values do not matter for speed; the token delays need no history).
    run.states.back().transformer.offset = position;
    if (position == 0) continue;  // an untouched cache costs no memory until it fills
    for (auto& layer : run.states.back().transformer.layers)
      for (at::Tensor* t : {&layer.keys, &layer.values, &layer.key_scales, &layer.value_scales})
        if (t->defined()) t->zero_();
  }
  return run;
}

// One (batched) step of `run`, recorded when `keep`. With Mimi, the frame around it too.
void time_step(const kyutai::LmConfig& config, const at::Device& device, Run& run,
               Conversation* mimi, bool keep) {
  static const kyutai::SamplingParams greedy{0.0, 0, 0.0, 0};
  const int64_t s = run.steps++;
  std::vector<std::vector<int64_t>> user;
  for (int b = 0; b < run.batch; ++b)
    user.emplace_back(static_cast<size_t>(config.user_codebooks()), (s + b) % config.card);
  kyutai::LmStepTimes times;
  const auto t0 = std::chrono::steady_clock::now();
  if (mimi) mimi->encode(static_cast<int>(s), user);
  const auto t1 = std::chrono::steady_clock::now();
  std::vector<kyutai::LmGenRow> rows(static_cast<size_t>(run.batch));
  std::vector<at::Tensor> heads(rows.size());  // the VAD heads of a speech-to-text model
  for (int b = 0; b < run.batch; ++b) {
    rows[b].user_codes = &user[b];
    rows[b].state = &run.states[b];
    rows[b].params = &greedy;
    if (config.extra_heads_num_heads > 0) rows[b].extra_heads = &heads[b];
  }
  run.gen.step_batch(rows, &times);
  for (const auto& row : rows)
    if (row.error) std::rethrow_exception(row.error);
  kyutai::torch_compat::synchronize(device);  // sampling read the logits back already
  const auto t2 = std::chrono::steady_clock::now();
  if (mimi) mimi->decode(rows);
  const auto t3 = std::chrono::steady_clock::now();
  if (!keep) return;
  run.frame_ms.push_back(std::chrono::duration<double, std::milli>(t3 - t0).count());
  run.step_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  run.main_ms.push_back(times.main_ms);
  run.dep_ms.push_back(times.depformer_ms);
}

// The floor's bandwidth (bench_util.h) on the CPU; 0 elsewhere.
double read_bandwidth(const at::Device& device) {
  return device.is_cpu() ? bench::read_bandwidth(kyutai::num_threads()) : 0;
}

// One line per run: the median step against the floor of the same rounds (0 off the CPU).
void report(const kyutai::LmModel& model, const std::vector<Run>& runs, double floor,
            const Options& o) {
  const int warmup = o.warmup;
  const std::string& device = o.device;
  const char* weights = kyutai::weight_format_name(model.weight_format());
  if (floor > 0)
    std::printf("floor gbps=%.1f (read bandwidth measured between the rounds, %d threads)\n", floor,
                kyutai::num_threads());
  for (const Run& run : runs) {
    const double step = bench::median(run.step_ms);
    const int64_t bytes =
        model.step_weight_bytes() + run.batch * kv_bytes(model, run.gen.kv_format(), run.position + warmup);
    std::printf("%zu steps: median %.1f ms, max %.1f ms; ", run.step_ms.size(), step,
                *std::max_element(run.step_ms.begin(), run.step_ms.end()));
    if (floor > 0)
      std::printf("floor %.1f ms (%.2f GB at %.1f GB/s); ", bytes / floor / 1e6, bytes / 1e9,
                  floor);
    std::printf("peak resident memory %.2f GB\n", resident_gb());
    std::printf(
        "lm step_ms=%.1f main_ms=%.1f depformer_ms=%.1f threads=%d weights=%s "
        "position=%lld gbps=%.1f batch=%d device=%s kv=%s\n",
        step, bench::median(run.main_ms), bench::median(run.dep_ms), kyutai::num_threads(), weights,
        static_cast<long long>(run.position), bytes / step / 1e6, run.batch, device.c_str(),
        kv_name(run.gen.kv_format()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (!parse(argc, argv, o)) throw std::invalid_argument("bad arguments");
  } catch (const std::exception&) {
    std::fprintf(
        stderr,
        "usage: lm-bench [--config lm_config.json] [--weights float32|bfloat16|int8|int4]\n"
        "                [--threads N] [--steps N] [--warmup N] [--rounds N]\n"
        "                [--position N[,N...]] [--batch N[,N...] | --batch N --with-mimi]\n"
        "                [--device cpu|cuda|cuda:N] [--kv model|int8[,...]]\n");
    return 2;
  }
  try {
    kyutai::set_num_threads(o.threads);
    kyutai::check_device(o.device);
    const at::Device device(o.device);
    const kyutai::LmConfig config = kyutai::LmConfig::from_file(o.config);
    kyutai::LmModel model(config, kyutai::resolve_weight_format(o.weights, o.device));
    const char* weights = kyutai::weight_format_name(model.weight_format());
    std::printf("config: %s, %.0f M parameters, %s weights\n", o.config.c_str(),
                kyutai::count_elements(model.params()) / 1e6, weights);
    const auto t_init = std::chrono::steady_clock::now();
    model.init_random(1234, device, kyutai::RandomDraw::Uniform);
    kyutai::torch_compat::synchronize(device);
    std::printf("random weights (uniform) made and packed in %.1f s; %.2f GB of weights per step\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_init).count(),
                model.step_weight_bytes() / 1e9);
    std::vector<Run> runs;
    for (kyutai::KvCacheFormat kv : o.kvs)
      for (int64_t position : o.positions)
        for (int batch : o.batches) runs.push_back(make_run(model, kv, position, batch));
    std::unique_ptr<Conversation> mimi;
    if (o.with_mimi) mimi = std::make_unique<Conversation>(config, o.batches[0]);
    std::vector<double> floor_gbps;
    // Rounds of every run in turn, with a bandwidth measurement between them, so that a noisy
    // moment of the machine touches every figure alike.
    for (int round = 0; round < o.rounds; ++round) {
      floor_gbps.push_back(read_bandwidth(device));
      for (Run& run : runs)
        for (int s = 0; s < (round == 0 ? o.warmup : 0) + o.steps; ++s)
          time_step(config, device, run, mimi.get(), round > 0 || s >= o.warmup);
    }
    report(model, runs, bench::median(floor_gbps), o);
    if (mimi) {
      const double frame = bench::median(runs.back().frame_ms);
      std::printf("conversation frame_ms=%.1f rtf=%.3f weights=%s threads=%d batch=%d\n", frame,
                  frame / 80.0, weights, kyutai::num_threads(), o.batches[0]);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
