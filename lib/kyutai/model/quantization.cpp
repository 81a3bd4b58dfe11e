#include "kyutai/model/quantization.h"

#include <ATen/ATen.h>

#include "kyutai/error.h"

namespace kyutai {

namespace {

// 1x1 convolution without bias: weight [out, in, 1], x [B, in, T] -> [B, out, T].
at::Tensor pointwise(const at::Tensor& weight, const at::Tensor& x) {
  return at::matmul(weight.squeeze(-1), x);
}

// The reference's EuclideanCodebook epsilon: rarely used codewords are not blown up.
constexpr double kUsageEpsilon = 1e-5;

}  // namespace

ResidualVQ::ResidualVQ(int n_q, const QuantizerConfig& config)
    : config_(config), layers_(static_cast<size_t>(n_q)) {}

void ResidualVQ::declare(const Params& p) {
  const int64_t dim = config_.dimension, bins = config_.bins;
  p.add("input_proj.weight", {dim, config_.input_dimension, 1}, input_proj_);
  p.add("output_proj.weight", {config_.output_dimension, dim, 1}, output_proj_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Params c = p.sub("vq").sub("layers").sub(i).sub("_codebook");
    c.add("_initialized", {1}, layers_[i].initialized, at::kFloat);
    c.add("cluster_usage", {bins}, layers_[i].cluster_usage, at::kFloat);
    c.add("embedding_sum", {bins, dim}, layers_[i].embedding_sum, at::kFloat);
  }
}

void ResidualVQ::prepare() {
  for (auto& layer : layers_) {
    const at::Tensor usage = layer.cluster_usage.clamp_min(kUsageEpsilon);
    layer.table = (layer.embedding_sum / usage.unsqueeze(1)).contiguous();
    layer.norms2 = layer.table.pow(2).sum(1);
    layer.scorer = LinearWeight{};
    if (layer.table.is_cpu() && layer.table.scalar_type() == at::kFloat) {
      layer.scorer.tensor = layer.table;
      layer.scorer.pack(WeightFormat::Float32);
    }
  }
}

at::Tensor ResidualVQ::project_in(const at::Tensor& latent) const {
  return pointwise(input_proj_, latent);
}

at::Tensor ResidualVQ::encode(const at::Tensor& latent, int n) const {
  const int64_t batch = latent.size(0), steps = latent.size(2);
  // Rows are the B*T vectors to quantize: [N, dim].
  at::Tensor residual = project_in(latent).transpose(1, 2).reshape({batch * steps, -1});
  std::vector<at::Tensor> codes;
  for (int i = 0; i < n; ++i) {
    const Codebook& cb = layers_[static_cast<size_t>(i)];
    // argmin ||r - c||^2 = argmin (||c||^2 - 2 r.c); argmin keeps the lowest index on ties.
    // A streaming frame's few vectors go through the kernels, which read the table once
    // (LinearWeight takes up to kExactRows rows, then libtorch's gemm). The two round a score
    // differently, so a streaming and a whole-signal encode can differ only where two
    // codewords are within rounding of each other.
    const at::Tensor scores =
        cb.scorer.shared_packed() && residual.scalar_type() == at::kFloat
            ? at::add(cb.norms2, cb.scorer(residual), /*alpha=*/-2)
            : at::addmm(cb.norms2, residual, cb.table.t(), /*beta=*/1, /*alpha=*/-2);
    at::Tensor index = scores.argmin(1);
    residual = residual - cb.table.index_select(0, index);
    codes.push_back(index.view({batch, 1, steps}));
  }
  return at::cat(codes, 1);
}

at::Tensor ResidualVQ::decode(const at::Tensor& codes) const {
  at::Tensor sum;
  for (int64_t k = 0; k < codes.size(1); ++k) {
    // [B, T, dim] codewords of level k.
    at::Tensor q = at::embedding(layers_[static_cast<size_t>(k)].table, codes.select(1, k));
    sum = sum.defined() ? sum + q : q;
  }
  return pointwise(output_proj_, sum.transpose(1, 2));
}

at::Tensor ResidualVQ::codebooks() const {
  std::vector<at::Tensor> tables;
  for (const auto& layer : layers_) tables.push_back(layer.table);
  return at::stack(tables);
}

SplitResidualVQ::SplitResidualVQ(const QuantizerConfig& config)
    : config_(config),
      first_(config.n_q_semantic, config),
      rest_(config.n_q - config.n_q_semantic, config) {}

void SplitResidualVQ::declare(const Params& p) {
  first_.declare(p.sub("rvq_first"));
  rest_.declare(p.sub("rvq_rest"));
}

void SplitResidualVQ::prepare() {
  first_.prepare();
  rest_.prepare();
}

at::Tensor SplitResidualVQ::encode(const at::Tensor& latent, int n) const {
  if (n < config_.n_q_semantic || n > config_.n_q)
    throw InputError("number of codebooks " + std::to_string(n) + " is outside [" +
                     std::to_string(config_.n_q_semantic) + ", " + std::to_string(config_.n_q) +
                     "]");
  at::Tensor codes = first_.encode(latent, config_.n_q_semantic);
  if (n > config_.n_q_semantic)
    codes = at::cat({codes, rest_.encode(latent, n - config_.n_q_semantic)}, 1);
  return codes;
}

at::Tensor SplitResidualVQ::decode(const at::Tensor& codes) const {
  const int64_t k = codes.size(1);
  if (codes.dim() != 3 || k < 1 || k > config_.n_q)
    throw InputError("codes have " + std::to_string(k) + " codebooks; this model takes 1 to " +
                     std::to_string(config_.n_q));
  if (codes.numel() > 0) {
    const int64_t low = codes.min().item<int64_t>(), high = codes.max().item<int64_t>();
    if (low < 0 || high >= config_.bins)
      throw InputError("code " + std::to_string(low < 0 ? low : high) +
                       " is outside the codebook range [0, " + std::to_string(config_.bins) + ")");
  }
  const int64_t semantic = std::min<int64_t>(k, config_.n_q_semantic);
  at::Tensor latent = first_.decode(codes.narrow(1, 0, semantic));
  if (k > semantic) latent = latent + rest_.decode(codes.narrow(1, semantic, k - semantic));
  return latent;
}

}  // namespace kyutai
