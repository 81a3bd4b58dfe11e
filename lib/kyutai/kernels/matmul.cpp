// matmul's dispatcher: picks the instruction set, prepares x once per call (bfloat16 rounding
// or int8 quantization, zero padding) and splits the output rows over the pool.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <new>
#include <string>
#include <vector>

#include "kyutai/error.h"
#include "kyutai/kernels/half.h"
#include "kyutai/kernels/kernel_table.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/kernels/thread_pool.h"

namespace kyutai::kernels {
namespace {

constexpr int64_t kMaxRows = 8;
// Below this many weight bytes per thread a product is not worth splitting: waking a worker
// costs a few microseconds, about what 64 KB take to stream. It is also the shortest claim
// (parallel_claims).
constexpr size_t kMinBytesPerTask = 64 * 1024;

std::atomic<int> g_isa{-1};

// Memory on cache-line boundaries: the kernels load x 64 bytes at a time at multiples of 64
// bytes from its start, and a load that straddles two lines costs two (malloc aligns to 16).
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};
template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

// x prepared for one call, per calling thread (the pool workers read the caller's copy).
struct Scratch {
  AlignedVector<float> xf;
  AlignedVector<uint16_t> xb;
  AlignedVector<int8_t> xq;
  AlignedVector<float> xd;
  AlignedVector<int32_t> xbias;
};

detail::RangeKernel kernel_for(const detail::KernelTable& table, WeightFormat format) {
  switch (format) {
    case WeightFormat::Float32: return table.float32;
    case WeightFormat::BFloat16: return table.bfloat16;
    case WeightFormat::Int8: return table.int8;
    case WeightFormat::Int4: return table.int4;
    case WeightFormat::Auto: break;  // no PackedWeight has it
  }
  return nullptr;
}

// Elements between prepared rows of x: in_padded and one cache line (MatmulArgs::x_pitch).
int64_t x_pitch(const PackedWeight& w) {
  const int64_t line = 64 / (w.format == WeightFormat::Float32    ? 4
                             : w.format == WeightFormat::BFloat16 ? 2
                                                                  : 1);
  return w.in_padded + line;
}

// Copies rows of x into s.xf [rows, pitch], zero-padded.
void pad_x(const PackedWeight& w, const float* x, int64_t rows, int64_t x_stride, int64_t pitch,
           Scratch& s) {
  s.xf.resize(rows * pitch);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy(x + r * x_stride, x + r * x_stride + w.in, &s.xf[r * pitch]);
    std::fill(s.xf.data() + r * pitch + w.in, s.xf.data() + (r + 1) * pitch, 0.0f);
  }
}

// Fills args' x fields for `rows` <= 8 rows of x.
void prepare_x(const PackedWeight& w, const float* x, int64_t rows, int64_t x_stride,
               const detail::KernelTable& table, Scratch& s, detail::MatmulArgs& args) {
  const int64_t n = w.in_padded, groups = n / kGroup, pitch = x_pitch(w);
  args.x_pitch = pitch;
  switch (w.format) {
    case WeightFormat::Float32:
      pad_x(w, x, rows, x_stride, pitch, s);
      args.xf = s.xf.data();
      return;
    case WeightFormat::BFloat16:
      s.xb.assign(rows * pitch, 0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < w.in; ++i) s.xb[r * pitch + i] = float_to_bf16(x[r * x_stride + i]);
      args.xb = s.xb.data();
      return;
    case WeightFormat::Int8:
    case WeightFormat::Int4:
      pad_x(w, x, rows, x_stride, pitch, s);
      s.xq.resize(rows * pitch);
      s.xd.resize(rows * groups);
      s.xbias.resize(rows * groups);
      for (int64_t r = 0; r < rows; ++r)
        table.quantize_row(&s.xf[r * pitch], n, w.format == WeightFormat::Int8 ? 128 : 8,
                           &s.xq[r * pitch], &s.xd[r * groups], &s.xbias[r * groups]);
      args.xq = s.xq.data();
      args.xd = s.xd.data();
      args.xbias = s.xbias.data();
      return;
    case WeightFormat::Auto:  // no PackedWeight has it
      return;
  }
}

void matmul_rows(const PackedWeight& w, const float* x, int64_t rows, int64_t x_stride, float* y,
                 int64_t y_stride) {
  thread_local Scratch scratch;
  detail::MatmulArgs args{};
  args.rows = rows;
  args.in_padded = w.in_padded;
  args.w = w.data;
  args.w_scales = w.scales;
  args.w_row_bytes = w.bytes_per_row();
  args.y = y;
  args.y_stride = y_stride;
  const detail::KernelTable& table = detail::kernels_for(current_isa());
  prepare_x(w, x, rows, x_stride, table, scratch, args);
  const detail::RangeKernel kernel = kernel_for(table, w.format);
  const int64_t row_bytes =
      std::max<int64_t>(1, static_cast<int64_t>(w.total_bytes()) / std::max<int64_t>(1, w.out));
  // Claims of at least kMinBytesPerTask, rounded up: a product under it runs on the caller.
  const int64_t min_rows = (static_cast<int64_t>(kMinBytesPerTask) + row_bytes - 1) / row_bytes;
  parallel_claims(w.out, min_rows, [&](int64_t o0, int64_t o1) { kernel(args, o0, o1); });
}

}  // namespace

const detail::KernelTable& detail::kernels_for(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return avx512_kernels();
    case Isa::Avx2: return avx2_kernels();
    case Isa::Scalar: break;
  }
  return scalar_kernels();
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Isa::Avx512:
      return isa_supported(Isa::Avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bf16");
  }
  return false;
}

Isa best_isa() {
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (isa_supported(isa)) return isa;
  return Isa::Scalar;
}

Isa current_isa() {
  int isa = g_isa.load(std::memory_order_relaxed);
  if (isa < 0) {
    isa = static_cast<int>(best_isa());
    g_isa.store(isa, std::memory_order_relaxed);
  }
  return static_cast<Isa>(isa);
}

void set_isa(Isa isa) {
  if (!isa_supported(isa))
    throw ConfigError(std::string("kernels: this CPU lacks the ") + isa_name(isa) +
                      " instructions");
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void matmul(const PackedWeight& w, const float* x, int64_t rows, int64_t x_stride, float* y,
            int64_t y_stride) {
  for (int64_t r0 = 0; r0 < rows; r0 += kMaxRows)
    matmul_rows(w, x + r0 * x_stride, std::min(kMaxRows, rows - r0), x_stride, y + r0 * y_stride,
                y_stride);
}

// Tiles of kDenseColumns columns (a multiple of both instruction sets' 2 vectors) times a range
// of outputs; enough tiles that a thread that starts late still finds work.
constexpr int64_t kDenseColumns = 64;
constexpr int64_t kDenseTilesPerThread = 4;

void matmul_dense(const float* w, int64_t out, int64_t k, const float* x, int64_t columns,
                  float* y) {
  if (out <= 0 || columns <= 0) return;
  const detail::DenseKernel kernel = detail::kernels_for(current_isa()).dense;
  const detail::DenseArgs args{w, k, x, columns, y, columns};
  const int64_t tiles = (columns + kDenseColumns - 1) / kDenseColumns;
  const int64_t wanted = kDenseTilesPerThread * num_threads();
  const int64_t ranges = std::min((wanted + tiles - 1) / tiles, (out + 5) / 6);
  const int64_t per_range = ((out + ranges - 1) / ranges + 5) / 6 * 6;
  // A claim of at least ~128 K multiply-adds: a small product stays on the calling thread.
  const int64_t min_tiles =
      std::max<int64_t>(1, (int64_t{1} << 17) / (per_range * k * kDenseColumns));
  // Column-major over the tiles: a thread's consecutive tiles share their panel of x.
  parallel_claims(tiles * ranges, min_tiles, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c0 = (t / ranges) * kDenseColumns, o0 = (t % ranges) * per_range;
      if (o0 < out)
        kernel(args, o0, std::min(out, o0 + per_range), c0, std::min(columns, c0 + kDenseColumns));
    }
  });
}

void round_activations(WeightFormat format, const float* x, int64_t in, double* out) {
  switch (format) {
    case WeightFormat::Float32:
      std::copy(x, x + in, out);
      return;
    case WeightFormat::BFloat16:
      for (int64_t i = 0; i < in; ++i) out[i] = bf16_to_float(float_to_bf16(x[i]));
      return;
    case WeightFormat::Int8:
    case WeightFormat::Int4: {
      const int64_t n = padded_inputs(format, in);
      std::vector<float> padded(n, 0.0f);
      std::copy(x, x + in, padded.begin());
      std::vector<int8_t> q(n);
      std::vector<float> d(n / kGroup);
      std::vector<int32_t> bias(n / kGroup);
      detail::quantize_row_scalar(padded.data(), n, 0, q.data(), d.data(), bias.data());
      for (int64_t c = 0; c < in; ++c)
        out[c] = static_cast<double>(d[c / kGroup]) * q[detail::interleaved_index(c)];
      return;
    }
    case WeightFormat::Auto:
      throw ConfigError("kernels: the weight format 'auto' must be resolved first");
  }
}

}  // namespace kyutai::kernels
