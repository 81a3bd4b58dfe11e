// The weight-format kernels against a float64 reference of the same arithmetic, on every
// instruction set the CPU has; bit-identical results across row counts, thread counts and
// concurrent callers; the quantization error of each format.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "kyutai/error.h"
#include "kyutai/kernels/half.h"
#include "kyutai/kernels/kernel_table.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/kernels/thread_pool.h"

namespace kyutai::kernels {
namespace {

// The kernels are CPU code: a run of the library tests on a GPU (KYUTAI_TEST_DEVICE=cuda) skips
// them all. This binary links no libtorch, so it reads the variable itself.
class CpuOnly : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* device = std::getenv("KYUTAI_TEST_DEVICE");
    if (device && std::strncmp(device, "cpu", 3) != 0)
      GTEST_SKIP() << "the weight-format kernels run on the CPU only; KYUTAI_TEST_DEVICE is "
                   << device;
  }
};
[[maybe_unused]] ::testing::Environment* const cpu_only =
    ::testing::AddGlobalTestEnvironment(new CpuOnly);

constexpr WeightFormat kFormats[] = {WeightFormat::Float32, WeightFormat::BFloat16,
                                     WeightFormat::Int8, WeightFormat::Int4};

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Restores the instruction set and thread count a test changed.
class KernelTest : public ::testing::Test {
 protected:
  void TearDown() override {
    set_isa(best_isa());
    set_num_threads(2);
  }
  // Skips the test when the CPU lacks `isa`; true when it may go on.
  static bool use_isa(Isa isa) {
    if (!isa_supported(isa)) return false;
    set_isa(isa);
    return true;
  }
};

#define USE_ISA_OR_SKIP(isa)                                                                   \
  if (!use_isa(isa)) GTEST_SKIP() << "CPU lacks " << isa_name(isa)                            \
                                  << (isa == Isa::Avx512 ? " (AVX-512 F/BW/VL/VNNI/BF16)"     \
                                                         : " (AVX2/FMA/F16C)")

// Checks y [rows, out] against sum_i w(o, i) x(r, i) in float64 over the values the kernel
// multiplies, within 1e-5 of sum_i |w x| (the scale of float32 summation error).
void expect_matches_reference(const PackedWeight& w, const float* x, int64_t rows, const float* y) {
  std::vector<double> wd(w.in), xd(w.in);
  std::vector<std::vector<double>> xr(rows, std::vector<double>(w.in));
  for (int64_t r = 0; r < rows; ++r) round_activations(w.format, x + r * w.in, w.in, xr[r].data());
  for (int64_t o = 0; o < w.out; ++o) {
    dequantize_row(w, o, wd.data());
    for (int64_t r = 0; r < rows; ++r) {
      double ref = 0.0, mag = 0.0;
      for (int64_t i = 0; i < w.in; ++i) {
        ref += wd[i] * xr[r][i];
        mag += std::fabs(wd[i] * xr[r][i]);
      }
      ASSERT_LE(std::fabs(y[r * w.out + o] - ref), 1e-5 * mag + 1e-30)
          << weight_format_name(w.format) << " out=" << w.out << " in=" << w.in << " rows=" << rows
          << " r=" << r << " o=" << o;
    }
  }
}

class MatmulParity : public KernelTest, public ::testing::WithParamInterface<std::tuple<Isa, WeightFormat>> {};

TEST_P(MatmulParity, MatchesReferenceOnOddShapes) {
  const auto [isa, format] = GetParam();
  USE_ISA_OR_SKIP(isa);
  for (int64_t in : {1, 31, 33, 100, 4096 + 17, 8192 + 40}) {
    for (int64_t out : {1, 3, 17, 64, 300}) {
      const auto wf = gaussian(out * in, static_cast<uint32_t>(out * 7919 + in), 0.05f);
      const PackedWeight w = pack(format, wf.data(), out, in);
      for (int64_t rows = 1; rows <= 8; ++rows) {
        const auto x = gaussian(rows * in, static_cast<uint32_t>(rows * 31 + in));
        std::vector<float> y(rows * out, NAN);
        matmul(w, x.data(), rows, in, y.data(), out);
        expect_matches_reference(w, x.data(), rows, y.data());
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Each row's result is the same bits whether it is computed alone, in any batch, or with any
// number of threads. With 8232 inputs, batches of 5 rows or more read x in chunks (tiles of
// weight rows, matmul_body.h) and smaller ones do not; int4 interleaves its rows' dots from 3.
TEST_P(MatmulParity, BitIdenticalAcrossRowsAndThreads) {
  const auto [isa, format] = GetParam();
  USE_ISA_OR_SKIP(isa);
  for (int64_t in : {1024 + 40, 8192 + 40}) {
    const int64_t out = 300, rows = 8;
    const auto wf = gaussian(out * in, 1, 0.05f);
    const auto x = gaussian(rows * in, 2);
    const PackedWeight w = pack(format, wf.data(), out, in);
    set_num_threads(1);
    std::vector<float> all(rows * out);
    matmul(w, x.data(), rows, in, all.data(), out);
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      for (int64_t batch : {1, 3, 4, 5, 7, 8}) {
        std::vector<float> y(rows * out);
        for (int64_t r0 = 0; r0 < rows; r0 += batch)
          matmul(w, x.data() + r0 * in, std::min(batch, rows - r0), in, y.data() + r0 * out, out);
        EXPECT_EQ(std::memcmp(y.data(), all.data(), sizeof(float) * y.size()), 0)
            << "in=" << in << " threads=" << threads << " batch=" << batch;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, MatmulParity,
                         ::testing::Combine(::testing::Values(Isa::Scalar, Isa::Avx2, Isa::Avx512),
                                            ::testing::ValuesIn(kFormats)),
                         [](const auto& info) {
                           return std::string(isa_name(std::get<0>(info.param))) + "_" +
                                  weight_format_name(std::get<1>(info.param));
                         });

// Two to four conversations calling products at once get what one caller alone gets.
TEST_F(KernelTest, ConcurrentCallersMatchSingleThreaded) {
  set_num_threads(2);
  const int64_t out = 512, in = 1024;
  std::vector<PackedWeight> weights;
  for (WeightFormat f : kFormats) weights.push_back(pack(f, gaussian(out * in, 3).data(), out, in));
  const auto x = gaussian(4 * in, 4);
  std::vector<std::vector<float>> expected(weights.size(), std::vector<float>(4 * out));
  for (size_t i = 0; i < weights.size(); ++i)
    matmul(weights[i], x.data(), 4, in, expected[i].data(), out);
  for (int callers : {2, 3, 4}) {
    std::vector<int> mismatches(callers, 0);
    std::vector<std::thread> threads;
    for (int c = 0; c < callers; ++c)
      threads.emplace_back([&, c] {
        std::vector<float> y(4 * out);
        for (int iter = 0; iter < 50; ++iter) {
          const size_t i = (c + iter) % weights.size();
          matmul(weights[i], x.data(), 4, in, y.data(), out);
          mismatches[c] += std::memcmp(y.data(), expected[i].data(), sizeof(float) * y.size()) != 0;
        }
      });
    for (auto& t : threads) t.join();
    for (int c = 0; c < callers; ++c) EXPECT_EQ(mismatches[c], 0) << callers << " callers, caller " << c;
  }
}

// Relative L2 error of dequantize(pack(w)) on Gaussian rows as wide as the 7B's.
TEST_F(KernelTest, QuantizationRoundTripError) {
  const int64_t out = 64, in = 4096;
  const auto wf = gaussian(out * in, 5, 0.02f);
  const double bounds[] = {0.0, 0.0025, 0.008, 0.11};  // measured: 0, 0.0017, 0.0053, 0.086
  for (WeightFormat f : kFormats) {
    const PackedWeight w = pack(f, wf.data(), out, in);
    std::vector<double> row(in);
    double err = 0.0, norm = 0.0;
    for (int64_t o = 0; o < out; ++o) {
      dequantize_row(w, o, row.data());
      for (int64_t i = 0; i < in; ++i) {
        err += (row[i] - wf[o * in + i]) * (row[i] - wf[o * in + i]);
        norm += static_cast<double>(wf[o * in + i]) * wf[o * in + i];
      }
    }
    const double rel = std::sqrt(err / norm);
    std::printf("[ quant    ] %-8s relative L2 error %.5f, %.3f bytes per weight\n",
                weight_format_name(f), rel, static_cast<double>(w.total_bytes()) / (out * in));
    EXPECT_LE(rel, bounds[static_cast<int>(f)]) << weight_format_name(f);
  }
}

TEST_F(KernelTest, PackFromBfloat16MatchesPackFromFloat) {
  const int64_t out = 17, in = 600;
  const auto wf = gaussian(out * in, 6);
  std::vector<uint16_t> wb(wf.size());
  std::vector<float> wr(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) {
    wb[i] = float_to_bf16(wf[i]);
    wr[i] = bf16_to_float(wb[i]);
  }
  for (WeightFormat f : kFormats) {
    const PackedWeight a = pack_bf16(f, wb.data(), out, in), b = pack(f, wr.data(), out, in);
    ASSERT_EQ(a.total_bytes(), b.total_bytes());
    EXPECT_EQ(std::memcmp(a.data, b.data, a.data_bytes()), 0) << weight_format_name(f);
    // Float formats have no scales (null): memcmp must not be given a null pointer, even for 0.
    if (a.scale_count() > 0) {
      EXPECT_EQ(std::memcmp(a.scales, b.scales, 2 * a.scale_count()), 0) << weight_format_name(f);
    }
  }
  // BFloat16 keeps the checkpoint's bits.
  const PackedWeight p = pack_bf16(WeightFormat::BFloat16, wb.data(), out, in);
  EXPECT_EQ(std::memcmp(p.data, wb.data(), 2 * in), 0);
}

// A view of copied arrays (as a memory-mapped cache file would give) computes the same.
TEST_F(KernelTest, ViewOfSavedArraysMatches) {
  const int64_t out = 40, in = 700, rows = 2;
  const auto x = gaussian(rows * in, 7);
  for (WeightFormat f : kFormats) {
    const PackedWeight w = pack(f, gaussian(out * in, 8).data(), out, in);
    auto data = std::make_shared<std::vector<uint8_t>>(w.data, w.data + w.data_bytes());
    std::vector<uint16_t> scales(w.scales, w.scales + w.scale_count());
    const PackedWeight v = PackedWeight::view(f, out, in, data->data(),
                                              scales.empty() ? nullptr : scales.data(), data);
    std::vector<float> y0(rows * out), y1(rows * out);
    matmul(w, x.data(), rows, in, y0.data(), out);
    matmul(v, x.data(), rows, in, y1.data(), out);
    EXPECT_EQ(std::memcmp(y0.data(), y1.data(), sizeof(float) * y0.size()), 0)
        << weight_format_name(f);
  }
}

// The table's figures are what packing really takes: bytes per weight with the scales, bits
// per stored value, scales for the quantized formats only.
TEST_F(KernelTest, TheTableSaysWhatAPackedWeightTakes) {
  const int64_t out = 6, in = 2 * kSuperBlock;  // no padding in any format
  const auto wf = gaussian(out * in, 11);
  for (WeightFormat f : kFormats) {
    const WeightFormatTraits& t = weight_format_traits(f);
    const PackedWeight w = pack(f, wf.data(), out, in);
    EXPECT_DOUBLE_EQ(static_cast<double>(w.total_bytes()) / (out * in), t.bytes_per_weight)
        << t.name;
    EXPECT_EQ(8 * w.bytes_per_row(), t.value_bits * in) << t.name;
    EXPECT_EQ(w.scale_count(), t.group_size ? static_cast<size_t>(out * in / t.group_size) : 0u)
        << t.name;
    EXPECT_EQ(w.scale_count() > 0, t.quantized) << t.name;
  }
}

// The kernels throw the library's typed errors, which the elements' error table maps.
TEST_F(KernelTest, ErrorsAreTheLibrarysTypedOnes) {
  const auto wf = gaussian(64, 12);
  EXPECT_THROW(pack(WeightFormat::Auto, wf.data(), 2, 32), ConfigError);
  EXPECT_THROW(pack(WeightFormat::Int8, wf.data(), 0, 32), ConfigError);
  EXPECT_THROW(PackedWeight::view(WeightFormat::Int8, 2, 32, wf.data(), nullptr, nullptr), Error);
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!isa_supported(isa)) {
      EXPECT_THROW(set_isa(isa), ConfigError) << isa_name(isa);
    }
  }
}

TEST_F(KernelTest, StridedRowsAndPaddedInputs) {
  EXPECT_EQ(padded_inputs(WeightFormat::Int4, 4096), 4096);
  EXPECT_EQ(padded_inputs(WeightFormat::Int8, 4113), 4608);
  EXPECT_EQ(padded_inputs(WeightFormat::BFloat16, 4113), 4128);
  const int64_t out = 5, in = 70, rows = 3, xs = 100, ys = 9;
  const auto x = gaussian(rows * xs, 9);
  const PackedWeight w = pack(WeightFormat::Int8, gaussian(out * in, 10).data(), out, in);
  std::vector<float> y(rows * ys, -1.0f), packed_x(rows * in), y_ref(rows * out);
  for (int64_t r = 0; r < rows; ++r) std::copy(&x[r * xs], &x[r * xs + in], &packed_x[r * in]);
  matmul(w, x.data(), rows, xs, y.data(), ys);
  matmul(w, packed_x.data(), rows, in, y_ref.data(), out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) EXPECT_EQ(y[r * ys + o], y_ref[r * out + o]);
    for (int64_t o = out; o < ys; ++o) EXPECT_EQ(y[r * ys + o], -1.0f);  // untouched
  }
}

// Every instruction set quantizes activations to the same bits, ties (x / d exactly k + 1/2)
// included: 127 sets d = 1, so the halves after it are ties.
TEST(ActivationQuantization, SameBitsOnEveryIsa) {
  const int64_t n = 1024;
  auto x = gaussian(n, 11);
  const float ties[] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -126.5f, 0.0f};
  std::copy(std::begin(ties), std::end(ties), x.begin() + 64);
  std::fill(x.begin() + 512, x.begin() + 544, 0.0f);  // an all-zero group: d = 0
  std::vector<int8_t> q0(n), q1(n);
  std::vector<float> d0(n / 32), d1(n / 32);
  std::vector<int32_t> b0(n / 32), b1(n / 32);
  detail::quantize_row_scalar(x.data(), n, 8, q0.data(), d0.data(), b0.data());
  EXPECT_EQ(q0[detail::interleaved_index(64 + 1)], 0);   // 0.5 -> 0
  EXPECT_EQ(q0[detail::interleaved_index(64 + 2)], 2);   // 1.5 -> 2
  EXPECT_EQ(q0[detail::interleaved_index(64 + 3)], 2);   // 2.5 -> 2
  EXPECT_EQ(q0[detail::interleaved_index(64 + 7)], 126); // 126.5 -> 126
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!isa_supported(isa)) continue;
    std::fill(q1.begin(), q1.end(), int8_t{99});
    detail::kernels_for(isa).quantize_row(x.data(), n, 8, q1.data(), d1.data(), b1.data());
    EXPECT_EQ(q0, q1) << isa_name(isa);
    EXPECT_EQ(d0, d1) << isa_name(isa);
    EXPECT_EQ(b0, b1) << isa_name(isa);
  }
}

// The dense products of many columns (a convolution's unfolded signal): per element one chain
// of fused multiply-adds in the order of the inputs, so the same bits on every instruction set,
// thread count and column count, and within float32 rounding of a float64 product. Odd sizes
// take every tail: fewer than 6 outputs, one vector of columns, single columns.
TEST_F(KernelTest, DenseProductsAreOneFusedChainPerElement) {
  for (const auto& [out, k, columns] : {std::tuple<int64_t, int64_t, int64_t>{64, 192, 1920},
                                        {13, 7, 77},
                                        {5, 640, 23},
                                        {131, 96, 40},
                                        {1, 1, 1}}) {
    SCOPED_TRACE(std::to_string(out) + "x" + std::to_string(k) + "x" + std::to_string(columns));
    const auto w = gaussian(out * k, 21), x = gaussian(k * columns, 22);
    std::vector<float> expected(out * columns);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < columns; ++c) {
        float acc = 0.0f;
        double exact = 0.0, magnitude = 0.0;
        for (int64_t i = 0; i < k; ++i) {
          acc = std::fma(w[o * k + i], x[i * columns + c], acc);
          exact += static_cast<double>(w[o * k + i]) * x[i * columns + c];
          magnitude += std::fabs(static_cast<double>(w[o * k + i]) * x[i * columns + c]);
        }
        expected[o * columns + c] = acc;
        ASSERT_NEAR(acc, exact, 1e-6 * magnitude * k);
      }
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
      if (!use_isa(isa)) continue;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<float> y(out * columns, -1.0f);
        matmul_dense(w.data(), out, k, x.data(), columns, y.data());
        EXPECT_EQ(std::memcmp(y.data(), expected.data(), y.size() * sizeof(float)), 0)
            << isa_name(isa) << ", " << threads << " threads";
      }
    }
  }
}

// The products' claims (thread_pool.h), on 1 to 3 threads: every index once, and each claim of
// the documented size: half a thread's share of what is left, never under the minimum but the
// last.
TEST(ParallelClaims, CoverEveryIndexOnceInOrderedRuns) {
  struct Claim {
    int64_t begin, end;
  };
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (const auto& [n, min_chunk] : std::vector<std::pair<int64_t, int64_t>>{
             {0, 4}, {1, 4}, {7, 16}, {1000, 1}, {4096, 28}, {22528, 113}}) {
      std::mutex m;
      std::vector<Claim> claims;
      std::vector<int> seen(static_cast<size_t>(n), 0);
      parallel_claims(n, min_chunk, [&](int64_t b, int64_t e) {
        std::lock_guard<std::mutex> lock(m);
        claims.push_back({b, e});
        for (int64_t i = b; i < e; ++i) ++seen[static_cast<size_t>(i)];
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)], 1) << i;
      std::sort(claims.begin(), claims.end(),
                [](const Claim& a, const Claim& b) { return a.begin < b.begin; });
      const int64_t pool = std::min<int64_t>(threads, n / min_chunk + (n % min_chunk != 0));
      for (size_t c = 0; c < claims.size(); ++c) {
        const int64_t size = claims[c].end - claims[c].begin, left = n - claims[c].begin;
        EXPECT_GT(size, 0);
        if (claims.size() == 1) continue;  // run whole on the caller
        EXPECT_EQ(size, std::min(left, std::max(min_chunk, left / (2 * pool))))
            << "n " << n << " claim " << c;
      }
    }
  }
  set_num_threads(2);
}

TEST(HalfConversion, RoundsToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(1e6f), 0x7c00);
  EXPECT_EQ(float_to_half(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), 0x3c00);      // tie, to even
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048), 0x3c02);      // tie, to even
  for (uint32_t h = 0; h < 0x7c00; ++h)  // every finite positive half survives a round trip
    ASSERT_EQ(float_to_half(half_to_float(static_cast<uint16_t>(h))), h);
  EXPECT_EQ(float_to_bf16(1.0f + 1.0f / 256), 0x3f80);  // tie, to even
  EXPECT_EQ(float_to_bf16(1.0f + 3.0f / 256), 0x3f82);
}

}  // namespace
}  // namespace kyutai::kernels
