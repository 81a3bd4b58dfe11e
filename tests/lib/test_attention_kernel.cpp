// The streaming attention kernel against a float64 reference of the same arithmetic (keys and
// values as the cache stores them and, for a bfloat16 cache, the query as the kernel rounds it),
// on each instruction-set path the CPU has (dims that are not a multiple of 16 take the portable
// head on every path); and the int8 cache's quantizer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kyutai/kernels/attention.h"
#include "kyutai/kernels/half.h"
#include "kyutai/kernels/kernels.h"

namespace kyutai::kernels {
namespace {

struct Case {
  int64_t heads, capacity, keys, dim;
  float sharpness = 1;  // the query's scale: 16 spreads the scores over more than 100
};

// A cache array in one format: what the kernel reads, and the values it stands for.
struct Stored {
  Stored(const std::vector<float>& f, KvFormat format, int64_t dim) : f32(f) {
    const size_t n = f.size();
    decoded.resize(n);
    if (format == KvFormat::BFloat16) {
      bf16.resize(n);
      for (size_t i = 0; i < n; ++i) decoded[i] = bf16_to_float(bf16[i] = float_to_bf16(f[i]));
      data = bf16.data();
    } else if (format == KvFormat::Int8) {
      i8.resize(n);
      scales.resize(n / static_cast<size_t>(dim));
      quantize_kv_rows(f.data(), static_cast<int64_t>(scales.size()), dim, i8.data(),
                       scales.data());
      for (size_t i = 0; i < n; ++i)
        decoded[i] = static_cast<double>(scales[i / static_cast<size_t>(dim)]) * i8[i];
      data = i8.data();
    } else {
      decoded.assign(f.begin(), f.end());
      data = f32.data();
    }
  }
  const float* scale_data() const { return scales.empty() ? nullptr : scales.data(); }
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  std::vector<int8_t> i8;
  std::vector<float> scales;
  std::vector<double> decoded;
  const void* data = nullptr;
};

class AttentionKernel : public ::testing::TestWithParam<std::tuple<Isa, KvFormat>> {};

INSTANTIATE_TEST_SUITE_P(Paths, AttentionKernel,
                         ::testing::Combine(::testing::Values(Isa::Scalar, Isa::Avx2, Isa::Avx512),
                                            ::testing::Values(KvFormat::Float32,
                                                              KvFormat::BFloat16,
                                                              KvFormat::Int8)));

TEST_P(AttentionKernel, MatchesFloat64Reference) {
  const auto [isa, format] = GetParam();
  if (!isa_supported(isa)) GTEST_SKIP() << "the CPU lacks " << isa_name(isa);
  set_isa(isa);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  for (const Case c : {Case{1, 1, 1, 16}, Case{2, 9, 7, 16}, Case{2, 12, 11, 48},
                       Case{3, 10, 7, 64}, Case{4, 40, 40, 128}, Case{2, 9, 5, 24},
                       Case{32, 300, 257, 128}, Case{4, 70, 67, 128, 16}, Case{2, 20, 19, 80},
                       Case{2, 10, 9, 512}}) {
    const size_t n = static_cast<size_t>(c.heads * c.capacity * c.dim);
    std::vector<float> q(static_cast<size_t>(c.heads * c.dim)), kf(n), vf(n);
    for (auto* a : {&q, &kf, &vf})
      for (float& x : *a) x = normal(rng);
    for (float& x : q) x *= c.sharpness;
    const Stored k(kf, format, c.dim), v(vf, format, c.dim);
    // With a bfloat16 cache the query is rounded to bfloat16 too, as bfloat16 products do.
    auto query = [&](size_t i) {
      return format == KvFormat::BFloat16 ? bf16_to_float(float_to_bf16(q[i]))
                                          : static_cast<double>(q[i]);
    };
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
    std::vector<float> out(q.size(), std::nanf(""));
    attend_step(q.data(), k.data, v.data, format, c.heads, c.capacity, c.keys, c.dim, scale,
                out.data(), k.scale_data(), v.scale_data());
    double err = 0, norm = 0;
    for (int64_t h = 0; h < c.heads; ++h) {
      std::vector<double> s(static_cast<size_t>(c.keys));
      double top = -1e300, total = 0;
      for (int64_t j = 0; j < c.keys; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < c.dim; ++d)
          dot += query(h * c.dim + d) * k.decoded[(h * c.capacity + j) * c.dim + d];
        s[j] = dot * scale;
        top = std::max(top, s[j]);
      }
      for (double& x : s) total += x = std::exp(x - top);
      for (int64_t d = 0; d < c.dim; ++d) {
        double ref = 0;
        for (int64_t j = 0; j < c.keys; ++j)
          ref += s[j] / total * v.decoded[(h * c.capacity + j) * c.dim + d];
        const double got = out[h * c.dim + d];
        ASSERT_FALSE(std::isnan(got)) << "output not written";
        err += (got - ref) * (got - ref);
        norm += ref * ref;
      }
    }
    EXPECT_LE(std::sqrt(err / norm), 1e-5)
        << "heads " << c.heads << " keys " << c.keys << " dim " << c.dim;
  }
  set_isa(best_isa());
}

TEST(KvQuantizer, RowsOfInt8WithTheirScale) {
  const std::vector<float> x = {0.5f, -1.27f, 0.01f, 0.0f,  0.0f, 0.0f,
                                0.0f, 0.0f,   0.3f,  0.6f, -0.15f, 0.0f};
  std::vector<int8_t> q(x.size());
  std::vector<float> scales(3);
  quantize_kv_rows(x.data(), 3, 4, q.data(), scales.data());
  EXPECT_FLOAT_EQ(scales[0], 1.27f / 127);
  EXPECT_EQ(q[1], -127);  // the largest magnitude maps to +-127 exactly
  EXPECT_EQ(q[0], static_cast<int8_t>(std::nearbyint(0.5f * (1 / (1.27f / 127)))));
  EXPECT_EQ(q[2], 1);
  EXPECT_EQ(scales[1], 0.0f);  // an all-zero row stays zero
  for (int i = 4; i < 8; ++i) EXPECT_EQ(q[i], 0);
  EXPECT_EQ(q[9], 127);
  EXPECT_EQ(q[10], static_cast<int8_t>(std::nearbyint(-0.15f * (1 / (0.6f / 127)))));
  std::vector<float> out(4);
  EXPECT_THROW(attend_step(x.data(), q.data(), q.data(), KvFormat::Int8, 1, 3, 3, 4, 1.0f,
                           out.data()),
               std::exception);  // int8 without its scales
}

}  // namespace
}  // namespace kyutai::kernels
