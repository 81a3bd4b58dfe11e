// Internal: the one place that knows which libtorch the library is built against. It builds
// against Debian's libtorch 1.13 (the default) and PyTorch 2.x wheels (the GPU machine has
// 2.11). Every ATen/c10 call of lib/, tests/ and bench/ was checked against both; the ones whose
// spelling or meaning moved between them are reached through this header, never directly:
//
// - synchronising a device: at::cuda is not linked by a CPU build, and ATen's CUDA hooks took
//   int64_t device indices in 1.13 but DeviceIndex (int8_t) in 2.x, so synchronize() below waits
//   through a plain tensor read, which every version has.
// - float32 precision on GPUs (TF32): 1.13 has setAllowTF32CuBLAS/CuDNN, 2.9+ replaced them by
//   setFloat32Precision and warns on mixing the two. The library sets neither and so runs with
//   libtorch's defaults (cuBLAS products in full float32, cuDNN convolutions allowed TF32).
// - the C++ standard: 2.x needs C++17 (the project's); 2.13 or 2.14 on need C++20 (ATen's own
//   #error says so; configure with -Dcpp_std=c++20).
// - the libstdc++ ABI: pip wheels before 2.7 used the old ABI; lib/meson.build reads it from the
//   libtorch's TorchConfig.cmake.
//
// Unchanged between 1.13 and 2.11, and used directly: c10::Error::what_without_backtrace,
// at::detail::createCPUGenerator (ATen/CPUGeneratorImpl.h) with at::rand/at::randn taking an
// at::Generator, c10::InferenceMode, at::kBFloat16 and the other ScalarType constants,
// at::elementSize, c10::toString(ScalarType), Tensor::data_ptr<T>, at::from_blob with a
// deleter, at::hasCUDA, at::Device parsing "cpu"/"cuda:N" (c10::Error otherwise),
// at::set_num_threads/get_num_threads (ATen/Parallel.h), and the operators (at::conv1d,
// at::conv_transpose1d, at::mv_out, at::linear, at::gelu, ...).
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

// True when the libtorch is at least major.minor.
#define KYUTAI_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||         \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#if !KYUTAI_TORCH_AT_LEAST(1, 13)
#error "gst-moshi needs libtorch 1.13 or later"
#endif

namespace kyutai::torch_compat {

// Waits until the work queued on `device` so far has finished, so that a host clock read next
// measures it; a no-op on the CPU. Reading one value back waits for the device's stream the way
// torch.cuda.synchronize() does for a program that uses one stream, as this library does.
inline void synchronize(const at::Device& device) {
  if (device.is_cpu()) return;
  at::zeros({1}, at::TensorOptions().device(device)).item<float>();
}

}  // namespace kyutai::torch_compat
