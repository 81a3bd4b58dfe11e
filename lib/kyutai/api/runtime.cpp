#include "kyutai/runtime.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "kyutai/kernels/kernels.h"

namespace kyutai {

namespace {

std::atomic<int> g_threads{0};

// OpenBLAS is reached through Debian's generic libblas.so.3, so its own entry point is looked up
// at run time; with another BLAS (MKL in a pip libtorch) it is absent.
bool set_blas_threads(int n) {
  using SetThreads = void (*)(int);
  auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!fn) return false;
  fn(n);
  return true;
}

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The heavy float32 work (matrix products, convolutions as products) runs in OpenBLAS. Giving
  // it all threads and keeping libtorch's OpenMP pool at one thread avoids two spinning pools
  // fighting over the same cores, which costs 2-10x on small machines.
  // The weight-format kernels (transformer products, attention steps) have their own pool,
  // whose idle workers sleep: it gets the same count.
  kernels::set_num_threads(n);
  if (set_blas_threads(n))
    at::set_num_threads(1);
  else
    at::set_num_threads(n);
  g_threads = n;
}

int num_threads() {
  const int n = g_threads;
  return n > 0 ? n : at::get_num_threads();
}

}  // namespace kyutai
