// Internal: residual vector quantization (reference moshi/quantization/vq.py and core_vq.py).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "kyutai/config.h"
#include "kyutai/io/params.h"
#include "kyutai/weights/linear_weight.h"

namespace kyutai {

// ResidualVectorQuantizer with its 1x1 input and output projections.
class ResidualVQ {
 public:
  ResidualVQ(int n_q, const QuantizerConfig& config);
  void declare(const Params& p);  // input_proj, output_proj, vq.layers.{i}._codebook.*
  // Builds the lookup tables once the buffers are loaded.
  void prepare();

  // Latent [B, input_dim, T] -> codes [B, n, T] using the first n levels.
  at::Tensor encode(const at::Tensor& latent, int n) const;
  // Codes [B, K, T] (K <= n_q, checked by the caller) -> [B, output_dim, T].
  at::Tensor decode(const at::Tensor& codes) const;
  // [B, input_dim, T] -> [B, dimension, T], the space the codebooks live in.
  at::Tensor project_in(const at::Tensor& latent) const;
  // The codeword tables in use: embedding_sum / max(cluster_usage, 1e-5). [n_q, bins, dim].
  at::Tensor codebooks() const;
  int size() const { return static_cast<int>(layers_.size()); }

 private:
  struct Codebook {
    at::Tensor initialized, cluster_usage, embedding_sum;  // checkpoint buffers
    at::Tensor table;                                      // [bins, dim], derived
    at::Tensor norms2;                                     // [bins], squared codeword norms
    // On the CPU, the table for the kernels (a view of it, no copy): a streaming frame
    // quantizes a few vectors, a skinny product that BLAS serves by copying the whole table.
    LinearWeight scorer;
  };
  QuantizerConfig config_;
  at::Tensor input_proj_, output_proj_;
  std::vector<Codebook> layers_;
};

// SplitResidualVectorQuantizer: the first n_q_semantic levels quantize the latent in their own
// projected space, the rest in another; decoding sums both projections back.
class SplitResidualVQ {
 public:
  explicit SplitResidualVQ(const QuantizerConfig& config);
  void declare(const Params& p);  // "rvq_first.*", "rvq_rest.*"
  void prepare();
  // Latent [B, D, T] -> codes [B, n, T], 1 <= n <= total().
  at::Tensor encode(const at::Tensor& latent, int n) const;
  // Codes [B, K, T] -> quantized latent [B, D, T]; validates K and the code range.
  at::Tensor decode(const at::Tensor& codes) const;
  const ResidualVQ& first() const { return first_; }
  const ResidualVQ& rest() const { return rest_; }
  int total() const { return config_.n_q; }
  int cardinality() const { return config_.bins; }

 private:
  QuantizerConfig config_;
  ResidualVQ first_, rest_;
};

}  // namespace kyutai
