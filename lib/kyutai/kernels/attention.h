// One streaming step of multi-head attention against a KV cache: the product a long context
// makes expensive. At 3000 cached steps the 7B's keys and values are 1.6 GB in bfloat16, read
// once per step; libtorch's bfloat16 matmul on a CPU reads them at a fraction of memory
// bandwidth, so this kernel streams them itself, one head per task on the kernels' pool.
// Torch-free.
#pragma once

#include <cstdint>

namespace kyutai::kernels {

// How the cache stores keys and values. Int8: each cached row (one head's key or value at one
// position) as q[d] in [-127, 127] times its own float32 scale max|x| / 127, rounded half to
// even: half the bytes of bfloat16, which a long context reads at every step.
enum class KvFormat { Float32, BFloat16, Int8 };

// Quantizes `rows` rows of `dim` float32 values into the Int8 format: q [rows, dim], scales
// [rows]. The same bits on every instruction set.
void quantize_kv_rows(const float* x, int64_t rows, int64_t dim, int8_t* q, float* scales);

// For each head h < heads: out[h] = softmax_j(scale * q[h] . k[h, j]) v[h, :] over the first
// `keys` cached steps j. q and out are float32 [heads, dim]; k and v are [heads, capacity, dim]
// in `format` (head stride capacity * dim elements); for Int8, k_scales and v_scales are their
// rows' scales [heads, capacity]. Scores and sums are float32; each head's result depends on
// nothing else (not the thread count, not the other heads).
void attend_step(const float* q, const void* k, const void* v, KvFormat format, int64_t heads,
                 int64_t capacity, int64_t keys, int64_t dim, float scale, float* out,
                 const float* k_scales = nullptr, const float* v_scales = nullptr);

}  // namespace kyutai::kernels
