// Safetensors reading: every supported dtype, zero-copy mapping, and a clear FormatError (never a
// crash) for each kind of malformed file.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "kyutai/atomic_file.h"
#include "kyutai/error.h"
#include "kyutai/io/params.h"
#include "kyutai/safetensors.h"
#include "test_util.h"

namespace kyutai {
namespace {

using test::temp_path;

// A file made of an 8-byte length, the given header text and `data_bytes` bytes of data.
std::string make_file(const std::string& name, const std::string& header, size_t data_bytes,
                      int64_t length_override = -1) {
  const std::string path = temp_path(name);
  std::ofstream out(path, std::ios::binary);
  const uint64_t len =
      length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\x01');
  return path;
}

// Expects a FormatError whose message names the file and contains `what`.
void expect_format_error(const std::string& path, const std::string& what) {
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "'" << msg << "' lacks '" << what << "'";
  }
}

TEST(Safetensors, ReadsEveryDtype) {
  const std::string path = temp_path("dtypes.safetensors");
  std::map<std::string, at::Tensor> tensors = {
      {"f32", at::arange(6, at::kFloat).view({2, 3})},
      {"f16", at::arange(4, at::kHalf)},
      {"bf16", at::arange(4, at::kBFloat16)},
      {"i64", at::arange(3, at::kLong)},
      {"i32", at::arange(5, at::kInt)},
      {"u8", at::arange(7, at::kByte)},
      {"bool", at::arange(3, at::kLong).remainder(2).to(at::kBool)},
      {"empty", at::empty({0, 4}, at::kFloat)},
  };
  write_tensors(path, tensors, {{"producer", "test"}});
  const auto read = read_tensors(path);
  ASSERT_EQ(read.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(read.count(name)) << name;
    EXPECT_EQ(read.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(at::equal(read.at(name), t)) << name;
  }
  EXPECT_EQ(SafetensorsFile::open(path)->header().metadata.at("producer"), "test");
}

TEST(Safetensors, TensorsPointIntoTheMappingWithoutCopy) {
  const std::string path = temp_path("zerocopy.safetensors");
  write_tensors(path, {{"w", at::randn({16, 16})}});
  const auto file = SafetensorsFile::open(path);
  const TensorInfo& info = *file->find("w");
  const at::Tensor w = tensor_view(file, info);
  EXPECT_EQ(w.data_ptr(), static_cast<const void*>(file->data(info)));
  EXPECT_EQ(w.sizes(), at::IntArrayRef({16, 16}));
}

TEST(Safetensors, MissingFileIsNotFound) {
  EXPECT_THROW(SafetensorsFile::open(temp_path("does-not-exist")), NotFoundError);
}

TEST(Safetensors, TruncatedFile) {
  const std::string path = temp_path("short");
  std::ofstream(path, std::ios::binary) << "abc";
  expect_format_error(path, "too short");
}

TEST(Safetensors, HeaderLengthPastEndOfFile) {
  expect_format_error(make_file("len", "{}", 0, 1000), "runs past the end");
}

TEST(Safetensors, HeaderIsNotJson) {
  expect_format_error(make_file("json", "{not json", 0), "not valid JSON");
  expect_format_error(make_file("array", "[1, 2]", 0), "not a JSON object");
}

TEST(Safetensors, OffsetsOutOfRange) {
  expect_format_error(
      make_file("range", R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8),
      "outside the data section");
  expect_format_error(
      make_file("reversed", R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8),
      "outside the data section");
}

TEST(Safetensors, OverlappingTensors) {
  expect_format_error(make_file("overlap",
                                R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                12),
                      "overlap");
}

TEST(Safetensors, UnknownDtype) {
  expect_format_error(
      make_file("dtype", R"({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", 2),
      "unsupported dtype 'F8_E4M3'");
}

TEST(Safetensors, DataSizeNotShapeTimesDtype) {
  expect_format_error(
      make_file("size", R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8),
      "need 3 x 4");
}

TEST(Safetensors, MalformedEntries) {
  expect_format_error(make_file("noshape", R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4),
                      "lacks dtype, shape or data_offsets");
  expect_format_error(
      make_file("negdim", R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
      "non-negative integer");
  expect_format_error(
      make_file("huge", R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296],
                                  "data_offsets": [0, 4]}})",
                4),
      "overflows");
  expect_format_error(make_file("meta", R"({"__metadata__": {"k": 1}})", 0), "__metadata__");
}

}  // namespace
}  // namespace kyutai

namespace kyutai {
namespace {

// One float32 tensor "w" of `n` copies of `value`.
void write_constant(const std::string& path, float value, size_t n) {
  const std::vector<float> data(n, value);
  write_safetensors(path, {{"w", DType::F32, {static_cast<int64_t>(n)}, data.data()}});
}

ino_t inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_ino;
}

TEST(Safetensors, RewritingAMappedFileLeavesItsReadersAlone) {
  // The project's writer puts a new inode in place: a running process keeps the weights it
  // mapped (an in-place rewrite used to change them under it, a truncation to SIGBUS it).
  const test::TempDir dir;
  const std::string path = (dir / "w.safetensors").string();
  constexpr size_t kCount = 1 << 16;  // several pages
  write_constant(path, 1.f, kCount);
  const ino_t before = inode(path);
  const auto mapped = SafetensorsFile::open(path);
  const TensorInfo* info = mapped->find("w");
  ASSERT_NE(info, nullptr);
  write_constant(path, 2.f, kCount);
  write_constant(path, 3.f, 16);  // shorter: would have truncated the mapping
  EXPECT_NE(inode(path), before);
  const auto* old = reinterpret_cast<const float*>(mapped->data(*info));
  for (size_t i = 0; i < kCount; i += 1024) ASSERT_EQ(old[i], 1.f) << i;
  const auto fresh = SafetensorsFile::open(path);
  EXPECT_EQ(*reinterpret_cast<const float*>(fresh->data(*fresh->find("w"))), 3.f);
  // Nothing but the file itself is left in the directory.
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.str())) entries += e.exists();
  EXPECT_EQ(entries, 1u);
}

TEST(Safetensors, AFailedWriteLeavesTheOldFile) {
  const test::TempDir dir;
  const std::string path = (dir / "w.safetensors").string();
  write_constant(path, 1.f, 4);
  {
    AtomicFile file(path);
    file.write("garbage", 7);
  }  // destroyed without commit, as when a writer throws
  const auto f = SafetensorsFile::open(path);
  EXPECT_EQ(*reinterpret_cast<const float*>(f->data(*f->find("w"))), 1.f);
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.str())) entries += e.exists();
  EXPECT_EQ(entries, 1u);
}

}  // namespace
}  // namespace kyutai
