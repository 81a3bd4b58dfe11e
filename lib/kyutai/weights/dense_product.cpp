#include "kyutai/weights/dense_product.h"

#include <ATen/ATen.h>

#include <vector>

namespace kyutai::dense {

namespace {

bool use_gemv(const at::Tensor& w, int64_t columns) {
  return columns <= kMaxGemvColumns && w.scalar_type() == at::kFloat && w.device().is_cpu();
}

}  // namespace

at::Tensor matmul_wx(const at::Tensor& w, const at::Tensor& x) {
  const int64_t n = x.size(1);
  if (!use_gemv(w, n)) return at::mm(w, x);
  if (n == 1) return at::mv(w, x.select(1, 0)).unsqueeze(1);
  const at::Tensor rows = x.t().contiguous();  // [N, K]
  at::Tensor out = at::empty({n, w.size(0)}, w.options());
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor dst = out.select(0, i);
    at::mv_out(dst, w, rows.select(0, i));
  }
  return out.t();
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w) {
  const int64_t rows = x.numel() / x.size(-1);
  if (!use_gemv(w, rows)) return at::linear(x, w);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = w.size(0);
  return matmul_wx(w, x.reshape({rows, -1}).t()).t().reshape(shape);
}

}  // namespace kyutai::dense
