// Weight-format kernels against the machine's read bandwidth, on the Moshi 7B's product shapes:
// median time per product and the weight bytes (scales included) streamed per second. With
// oneDNN available it also times its bfloat16 and u8s8 int8 matmuls on the same shapes.
//
//   build/bench/kernel-bench --threads 2 [--seconds 0.3] [--formats int4,int8] [--no-onednn]
//                            [--isa avx2] [--hot] [--onednn-amx] [--rows 1..8]
//                            [--depformer | --stt | --attention]
//
// --attention times the streaming attention step (kernels/attention.h) instead: one step of all
// heads against a full cache, for the 1B STT model's and the 7B's heads, in the bfloat16 and
// int8 caches, with the cache bytes it reads per second.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kyutai/error.h"
#include "kyutai/kernels/attention.h"
#include "kyutai/kernels/half.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/kernels/thread_pool.h"

#ifdef KYUTAI_HAVE_ONEDNN
#include <dlfcn.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace kernels = kyutai::kernels;
using kyutai::WeightFormat;

namespace {

struct Options {
  int threads = 2;
  double seconds = 0.3;  // per case
  std::vector<WeightFormat> formats = {WeightFormat::Float32, WeightFormat::BFloat16,
                                       WeightFormat::Int8, WeightFormat::Int4};
  bool onednn = true;
  bool onednn_amx = false;  // allow oneDNN's AMX kernels (Sapphire Rapids; Zen 4 has none)
  bool hot = false;  // no rotation: weights that fit stay in cache (the kernels' compute rate)
  int64_t rows = 0;  // 0: every count of kRows
  bool depformer = false;  // the depformer's shapes instead of the temporal transformer's
  bool stt = false;        // the 1B STT model's shapes instead
  bool attention = false;  // the attention step instead of the products
};

struct Shape {
  int64_t out, in;
};
// The 7B's products: attention in/out, gating in (two halves), gating out, and the text head.
const std::vector<Shape> kShapes = {{4096, 4096}, {12288, 4096}, {22528, 4096}, {4096, 11264}};
// The depformer's (one of its 8 steps: attention in/out, gating in/out; its input projection
// from the temporal transformer; its output head over 2048 audio codes).
const std::vector<Shape> kDepformerShapes = {{3072, 1024}, {1024, 1024}, {5632, 1024},
                                             {1024, 2816}, {1024, 4096}, {2048, 1024}};
// Kyutai STT 1B's (bench/configs/stt_1b_config.json: dim 2048, gating hidden 5461): attention
// in/out, gating in (two halves), gating out. Four super-blocks a row, where the 7B has eight.
const std::vector<Shape> kSttShapes = {{6144, 2048}, {2048, 2048}, {10922, 2048}, {2048, 5461}};
const int64_t kRows[] = {1, 2, 4, 8};
// Each case cycles through copies of its weight totalling this much, so that the weight comes
// from memory and not from the (large) last-level cache.
constexpr size_t kRotationBytes = size_t(1) << 30;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of fn(iteration) over about `seconds`, after two warm-up calls.
double median_time(double seconds, const std::function<void(int)>& fn) {
  fn(0);
  fn(1);
  std::vector<double> t;
  const double end = now_s() + seconds;
  for (int i = 2; (now_s() < end && i < 2000) || t.size() < 5; ++i) {
    const double t0 = now_s();
    fn(i);
    t.push_back(now_s() - t0);
  }
  return bench::median(t);
}

std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Read bandwidth floor: threaded sums with the kernels' own pool over 16 MiB slices of a 1 GiB
// buffer, one slice per call (calls as long as a product's, so that the median treats both
// alike when other processes share the cores).
void bandwidth_floor(const Options& opt) {
  const int64_t n = bench::kFloorBufferWords, slice = bench::kFloorSliceWords;
  std::vector<uint64_t, kernels::StreamedAllocator<uint64_t>> buf(n, 1);
  volatile uint64_t sink = 0;
  const double t = median_time(opt.seconds * 2, [&](int i) {
    sink = sink + bench::read_words(buf.data() + (i % (n / slice)) * slice, slice, opt.threads);
  });
  std::printf("floor  read 16 MiB slices of 1 GiB  threads=%d  %.1f us  %.1f GB/s\n", opt.threads,
              t * 1e6, slice * 8 / t / 1e9);
}

// Copies of w's arrays (views kept alive by their own buffers) up to kRotationBytes.
std::vector<kernels::PackedWeight> rotation(const kernels::PackedWeight& w, bool hot) {
  std::vector<kernels::PackedWeight> copies{w};
  while (!hot && (copies.size() * w.total_bytes() < kRotationBytes || copies.size() < 2)) {
    // In huge pages, as the packed weights of a model are (kernels/pack.cpp).
    auto buf = std::make_shared<std::vector<uint8_t, kernels::StreamedAllocator<uint8_t>>>(
        w.total_bytes());
    std::memcpy(buf->data(), w.data, w.data_bytes());
    auto* scales = reinterpret_cast<uint16_t*>(buf->data() + w.data_bytes());
    if (w.scale_count() > 0) std::memcpy(scales, w.scales, 2 * w.scale_count());
    copies.push_back(kernels::PackedWeight::view(w.format, w.out, w.in, buf->data(),
                                                 w.scale_count() > 0 ? scales : nullptr, buf));
  }
  return copies;
}

void bench_kernels(const Options& opt) {
  for (WeightFormat f : opt.formats) {
    for (const Shape& s : opt.depformer ? kDepformerShapes : opt.stt ? kSttShapes : kShapes) {
      const auto copies =
          rotation(kernels::pack(f, gaussian(s.out * s.in, 1).data(), s.out, s.in), opt.hot);
      const auto x = gaussian(8 * s.in, 2);
      std::vector<float> y(8 * s.out);
      const std::vector<int64_t> row_counts =
          opt.rows != 0 ? std::vector<int64_t>{opt.rows}
                        : std::vector<int64_t>(std::begin(kRows), std::end(kRows));
      for (int64_t rows : row_counts) {
        const double t = median_time(opt.seconds, [&](int i) {
          kernels::matmul(copies[i % copies.size()], x.data(), rows, s.in, y.data(), s.out);
        });
        std::printf("gst-moshi %-8s %-6s [%5ld,%5ld] rows=%ld threads=%d  %8.1f us  %5.1f GB/s\n",
                    kyutai::weight_format_name(f), kernels::isa_name(kernels::current_isa()), s.out,
                    s.in, rows, opt.threads, t * 1e6, copies[0].total_bytes() / t / 1e9);
      }
    }
  }
}

// One streaming attention step of `heads` heads of `dim` against `keys` cached positions (the
// 1B STT model at its context of 750, the 7B at 3000), rotated through about 1 GiB of copies of
// the cache as the weights are (one copy with --hot).
void bench_attention(const Options& opt) {
  struct Case {
    const char* model;
    int64_t heads, keys, dim;
  };
  for (kernels::KvFormat f : {kernels::KvFormat::BFloat16, kernels::KvFormat::Int8}) {
    const bool int8 = f == kernels::KvFormat::Int8;
    for (const Case c : {Case{"stt-1b", 16, 750, 128}, Case{"7b", 32, 3000, 128}}) {
      const int64_t n = c.heads * c.keys * c.dim, rows = c.heads * c.keys;
      const std::vector<float> kf = gaussian(static_cast<size_t>(n), 3),
                               vf = gaussian(static_cast<size_t>(n), 4);
      const size_t element = int8 ? 1 : 2, bytes = 2 * (n * element + (int8 ? 4 * rows : 0));
      struct Cache {
        std::vector<uint8_t, kernels::StreamedAllocator<uint8_t>> k, v;
        std::vector<float> ks, vs;
      };
      std::vector<Cache> copies(opt.hot ? 1 : std::max<size_t>(2, kRotationBytes / bytes));
      for (Cache& cache : copies) {
        cache.k.resize(n * element);
        cache.v.resize(n * element);
        if (int8) {
          cache.ks.resize(rows);
          cache.vs.resize(rows);
          kernels::quantize_kv_rows(kf.data(), rows, c.dim,
                                    reinterpret_cast<int8_t*>(cache.k.data()), cache.ks.data());
          kernels::quantize_kv_rows(vf.data(), rows, c.dim,
                                    reinterpret_cast<int8_t*>(cache.v.data()), cache.vs.data());
        } else {
          auto* k = reinterpret_cast<uint16_t*>(cache.k.data());
          auto* v = reinterpret_cast<uint16_t*>(cache.v.data());
          for (int64_t i = 0; i < n; ++i) {
            k[i] = kyutai::kernels::float_to_bf16(kf[i]);
            v[i] = kyutai::kernels::float_to_bf16(vf[i]);
          }
        }
      }
      const std::vector<float> q = gaussian(static_cast<size_t>(c.heads * c.dim), 5);
      std::vector<float> out(q.size());
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
      const double t = median_time(opt.seconds, [&](int i) {
        const Cache& cache = copies[i % copies.size()];
        kernels::attend_step(q.data(), cache.k.data(), cache.v.data(), f, c.heads, c.keys, c.keys,
                             c.dim, scale, out.data(), int8 ? cache.ks.data() : nullptr,
                             int8 ? cache.vs.data() : nullptr);
      });
      std::printf(
          "gst-moshi attention %-8s %-6s %-6s heads=%ld keys=%ld dim=%ld threads=%d  %8.1f us  "
          "%5.1f GB/s\n",
          int8 ? "int8" : "bfloat16", kernels::isa_name(kernels::current_isa()), c.model, c.heads,
          c.keys, c.dim, opt.threads, t * 1e6, bytes / t / 1e9);
    }
  }
}

#ifdef KYUTAI_HAVE_ONEDNN
// oneDNN matmul x [M, K] * W^T, W [N, K] given as a [K, N] "ba" tensor and reordered once into
// the layout oneDNN prefers; f32 output. Int8: u8 activations, s8 weights, per-column scales.
void bench_onednn_case(const Options& opt, dnnl::engine& eng, dnnl::stream& strm, bool int8,
                       int64_t m, int64_t k, int64_t n) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const dt src_t = int8 ? dt::u8 : dt::bf16, wei_t = int8 ? dt::s8 : dt::bf16;
  dnnl::memory::desc src_md({m, k}, src_t, tag::ab), dst_md({m, n}, dt::f32, tag::ab);
  dnnl::memory::desc wei_any({k, n}, wei_t, tag::any), wei_plain({k, n}, wei_t, tag::ba);
  dnnl::primitive_attr attr;
  if (int8) attr.set_output_scales(1 << 1, std::vector<float>(n, 0.01f));
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_any, dst_md), attr, eng);
  dnnl::memory src(pd.src_desc(), eng), dst(pd.dst_desc(), eng), plain(wei_plain, eng);
  std::memset(src.get_data_handle(), 1, src.get_desc().get_size());
  std::memset(plain.get_data_handle(), 1, plain.get_desc().get_size());  // small, valid values
  const size_t bytes = pd.weights_desc().get_size();
  std::vector<dnnl::memory> weights;
  const size_t copies = opt.hot ? 1 : std::max<size_t>(2, kRotationBytes / bytes);
  for (size_t i = 0; i < copies; ++i) {
    weights.emplace_back(pd.weights_desc(), eng);
    dnnl::reorder(plain, weights.back()).execute(strm, plain, weights.back());
  }
  dnnl::matmul prim(pd);
  const double t = median_time(opt.seconds, [&](int i) {
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights[i % weights.size()]},
                        {DNNL_ARG_DST, dst}});
    strm.wait();
  });
  std::printf("onednn    %-8s        [%5ld,%5ld] rows=%ld threads=%d  %8.1f us  %5.1f GB/s\n",
              int8 ? "u8s8" : "bfloat16", n, k, m, opt.threads, t * 1e6, bytes / t / 1e9);
}

void bench_onednn(const Options& opt) {
  // Debian's oneDNN runs on libgomp, which read OMP_NUM_THREADS when it was loaded.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads")))
    set(opt.threads);
  if (!opt.onednn_amx) dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx512_core_bf16);
  std::printf("onednn    max isa %s\n", opt.onednn_amx ? "all (AMX allowed)" : "avx512_core_bf16");
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  for (bool int8 : {false, true})
    for (int64_t n : {4096, 12288})
      for (int64_t m : kRows) bench_onednn_case(opt, eng, strm, int8, m, 4096, n);
}
#endif

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: kernel-bench [--threads N] [--seconds S] [--formats a,b] "
               "[--isa scalar|avx2|avx512] [--no-onednn] [--onednn-amx] [--hot] [--rows 1..8] "
               "[--depformer | --stt | --attention]\n");
  std::exit(2);
}

// "int4,int8": every name must be a format.
std::vector<WeightFormat> parse_formats(const std::string& list) {
  std::vector<WeightFormat> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t end = std::min(list.find(',', start), list.size());
    const std::string name = list.substr(start, end - start);
    try {
      const WeightFormat f = kyutai::parse_weight_format(name);
      if (f == WeightFormat::Auto) usage();  // the kernels run formats, not choices
      out.push_back(f);
    } catch (const kyutai::ConfigError&) {
      usage();
    }
    start = end + 1;
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--threads" && has_value) opt.threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--seconds" && has_value) opt.seconds = std::atof(argv[++i]);
    else if (a == "--formats" && has_value) opt.formats = parse_formats(argv[++i]);
    else if (a == "--isa" && has_value) {
      const std::string isa = argv[++i];
      if (isa == "scalar") kernels::set_isa(kernels::Isa::Scalar);
      else if (isa == "avx2") kernels::set_isa(kernels::Isa::Avx2);
      else if (isa == "avx512") kernels::set_isa(kernels::Isa::Avx512);
      else usage();
    } else if (a == "--no-onednn") opt.onednn = false;
    else if (a == "--hot") opt.hot = true;
    else if (a == "--depformer")
      opt.depformer = true;
    else if (a == "--stt")
      opt.stt = true;
    else if (a == "--attention")
      opt.attention = true;
    else if (a == "--rows" && has_value) {
      opt.rows = std::atoi(argv[++i]);
      if (opt.rows < 1 || opt.rows > 8) usage();
    } else if (a == "--onednn-amx")
      opt.onednn_amx = true;
    else usage();
  }
  return opt;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  kernels::set_num_threads(opt.threads);
  bandwidth_floor(opt);
  if (opt.attention) {
    bench_attention(opt);
    return 0;
  }
  bench_kernels(opt);
#ifdef KYUTAI_HAVE_ONEDNN
  if (opt.onednn) bench_onednn(opt);
#else
  if (opt.onednn) std::printf("onednn    not built (libdnnl-dev missing)\n");
#endif
  return 0;
}
