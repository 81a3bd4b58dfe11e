// The streaming attention kernel against a float64 reference of the same arithmetic (keys,
// values and, for a bfloat16 cache, the query as the kernel rounds them), on each instruction-set
// path the CPU has (AVX2 has no head of its own: it checks the portable one is picked).
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
};

class AttentionKernel : public ::testing::TestWithParam<std::tuple<Isa, KvFormat>> {};

INSTANTIATE_TEST_SUITE_P(Paths, AttentionKernel,
                         ::testing::Combine(::testing::Values(Isa::Scalar, Isa::Avx2, Isa::Avx512),
                                            ::testing::Values(KvFormat::Float32,
                                                              KvFormat::BFloat16)));

TEST_P(AttentionKernel, MatchesFloat64Reference) {
  const auto [isa, format] = GetParam();
  if (!isa_supported(isa)) GTEST_SKIP() << "the CPU lacks " << isa_name(isa);
  set_isa(isa);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  for (const Case c : {Case{1, 1, 1, 16}, Case{2, 9, 7, 16}, Case{2, 12, 11, 48}, Case{3, 10, 7, 64}, Case{4, 40, 40, 128},
                       Case{2, 9, 5, 24}, Case{32, 300, 257, 128}}) {
    const size_t n = static_cast<size_t>(c.heads * c.capacity * c.dim);
    std::vector<float> q(static_cast<size_t>(c.heads * c.dim)), kf(n), vf(n);
    for (auto* a : {&q, &kf, &vf})
      for (float& x : *a) x = normal(rng);
    std::vector<uint16_t> kb(n), vb(n);
    for (size_t i = 0; i < n; ++i) {
      kb[i] = float_to_bf16(kf[i]);
      vb[i] = float_to_bf16(vf[i]);
    }
    auto stored = [&](const std::vector<float>& f, const std::vector<uint16_t>& b, size_t i) {
      return format == KvFormat::Float32 ? static_cast<double>(f[i]) : bf16_to_float(b[i]);
    };
    // With a bfloat16 cache the query is rounded to bfloat16 too, as bfloat16 products do.
    auto query = [&](size_t i) {
      return format == KvFormat::Float32 ? static_cast<double>(q[i])
                                         : bf16_to_float(float_to_bf16(q[i]));
    };
    const void* k = format == KvFormat::Float32 ? static_cast<const void*>(kf.data()) : kb.data();
    const void* v = format == KvFormat::Float32 ? static_cast<const void*>(vf.data()) : vb.data();
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
    std::vector<float> out(q.size(), std::nanf(""));
    attend_step(q.data(), k, v, format, c.heads, c.capacity, c.keys, c.dim, scale, out.data());
    double err = 0, norm = 0;
    for (int64_t h = 0; h < c.heads; ++h) {
      std::vector<double> s(static_cast<size_t>(c.keys));
      double top = -1e300, total = 0;
      for (int64_t j = 0; j < c.keys; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < c.dim; ++d)
          dot += query(h * c.dim + d) * stored(kf, kb, (h * c.capacity + j) * c.dim + d);
        s[j] = dot * scale;
        top = std::max(top, s[j]);
      }
      for (double& x : s) total += x = std::exp(x - top);
      for (int64_t d = 0; d < c.dim; ++d) {
        double ref = 0;
        for (int64_t j = 0; j < c.keys; ++j)
          ref += s[j] / total * stored(vf, vb, (h * c.capacity + j) * c.dim + d);
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

}  // namespace
}  // namespace kyutai::kernels
