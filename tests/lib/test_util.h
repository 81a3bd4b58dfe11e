// Shared helpers for the library tests: golden data paths and tensor comparisons.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "kyutai/params.h"

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
  if (n == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << n << " of " << expected.numel() << " codes differ";
}

}  // namespace kyutai::test
