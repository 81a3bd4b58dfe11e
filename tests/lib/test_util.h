// Shared helpers for the library tests: golden data paths and tensor comparisons.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "kyutai/io/params.h"

namespace kyutai::test {

inline std::string data_path(const std::string& relative) {
  return std::string(KYUTAI_TEST_DATA) + "/" + relative;
}

// A file name in the test's temporary directory, unique to this process.
inline std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/kyutai_" + std::to_string(getpid()) + "_" + name;
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() : path_(temp_path("dir" + std::to_string(counter_++))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  std::string str() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

// The device the parity and streaming tests run their models on: KYUTAI_TEST_DEVICE ("cpu",
// "cuda", "cuda:N"), the CPU when unset. Inputs and golden outputs stay on the CPU; results are
// compared there in float64.
inline std::string device_name() {
  const char* name = std::getenv("KYUTAI_TEST_DEVICE");
  return name && *name ? name : "cpu";
}

inline at::Device device() { return at::Device(device_name()); }

inline bool on_gpu() { return !device().is_cpu(); }

// Setting KYUTAI_TEST_DEVICE, even to cpu, makes the comparisons below print every error they
// measure, passing or not, so that runs on two devices can be set side by side.
inline bool reporting() { return std::getenv("KYUTAI_TEST_DEVICE") != nullptr; }

// One line per comparison: "[ measured ] Suite.Test: relative L2 3.1e-07 (tolerance 1e-05)".
inline void report(const char* what, double value, double tol) {
  if (!reporting()) return;
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::printf("[ measured ] %s.%s on %s: %s %.3g (tolerance %.3g)\n",
              info ? info->test_suite_name() : "?", info ? info->name() : "?",
              device_name().c_str(), what, value, tol);
}

// Skips a test that runs only on the CPU when the tests run on another device.
#define KYUTAI_CPU_ONLY(why)                                                         \
  if (!::kyutai::test::on_gpu()) {                                                   \
  } else                                                                             \
    GTEST_SKIP() << "runs on the CPU only (" << why << "); KYUTAI_TEST_DEVICE is " \
                 << ::kyutai::test::device_name()

// Relative L2 error ||a - b|| / ||b||, in float64.
inline double rel_l2(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor a64 = a.to(at::kCPU, at::kDouble), b64 = b.to(at::kCPU, at::kDouble);
  return (a64 - b64).norm().item<double>() / b64.norm().item<double>();
}

inline double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

// gtest assertion: same shape and relative L2 error within `tol`.
inline ::testing::AssertionResult close_rel(const at::Tensor& actual, const at::Tensor& expected,
                                            double tol) {
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << " != expected " << expected.sizes();
  const double err = rel_l2(actual, expected);
  report("relative L2", err, tol);
  if (err <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative L2 error " << err << " > " << tol;
}

// gtest assertion: integer tensors exactly equal.
inline ::testing::AssertionResult equal_codes(const at::Tensor& actual,
                                              const at::Tensor& expected) {
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << " != expected " << expected.sizes();
  const at::Tensor diff = actual.to(at::kCPU, at::kLong) != expected.to(at::kCPU, at::kLong);
  const int64_t n = diff.sum().item<int64_t>();
  report("codes differing", static_cast<double>(n), 0);
  if (n == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << n << " of " << expected.numel() << " codes differ";
}

// gtest assertion: max |a - b| below `tol` (strictly, as EXPECT_LT).
inline ::testing::AssertionResult max_abs_below(const at::Tensor& actual,
                                                const at::Tensor& expected, double tol) {
  const double err = max_abs(actual, expected);
  report("max abs", err, tol);
  if (err < tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max abs error " << err << " >= " << tol;
}

}  // namespace kyutai::test
