// The process's threads once the work is done: OpenBLAS's workers sleep soon after a product
// (lib/kyutai/api/blas_poll.cpp) instead of holding the cores for 0.1 s.
#include <ATen/ATen.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <time.h>

#include <chrono>
#include <thread>

#include "kyutai/runtime.h"

namespace {

double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

}  // namespace

// Without the interposed setting, OpenBLAS's idle worker polls for 2^28 cycles (about 0.1 s)
// and the process burns most of a core through the window below. A loaded machine can only
// lower what the window measures, never raise it.
TEST(Runtime, OpenBlasWorkersSleepSoonAfterAProduct) {
  if (dlsym(RTLD_DEFAULT, "openblas_set_num_threads") == nullptr)
    GTEST_SKIP() << "the BLAS is not OpenBLAS";
  kyutai::set_num_threads(2);
  const at::Tensor a = at::rand({512, 512});
  double busy_ms = 1e9;
  for (int attempt = 0; attempt < 3; ++attempt) {  // the least of three: a stray timer tick
    volatile float sink = at::mm(a, a).sum().item<float>();
    (void)sink;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const double before = process_cpu_ms();
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    busy_ms = std::min(busy_ms, process_cpu_ms() - before);
  }
  EXPECT_LT(busy_ms, 15.0) << "CPU time used by the process while it had nothing to do";
}
