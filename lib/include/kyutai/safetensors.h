// Safetensors reading without libtorch: header parsing (also the fuzz target's entry point) and a
// memory-mapped file that hands out pointers into the data section.
// Format: 8-byte little-endian header length N, N bytes of JSON, then the raw tensor data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kyutai {

enum class DType { F32, F16, BF16, I64, I32, U8, BOOL };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // safetensors spelling: "F32", "BF16", ...

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets inside the data section
  uint64_t end = 0;
};

struct Header {
  std::vector<TensorInfo> tensors;  // in the order of their data offsets
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the data section starts in the file
};

// Validates and parses a whole safetensors image of `size` bytes: the length prefix, the JSON,
// every dtype, shape and offset (in range, not overlapping, size == numel * dtype size).
// `origin` names the file in error messages. Throws FormatError; never reads out of bounds.
Header parse_header(const uint8_t* data, size_t size, const std::string& origin);

// A read-only view of a safetensors file, mapped into memory. Shared by every tensor that
// points into it, so the mapping lives as long as the last such tensor.
class SafetensorsFile {
 public:
  // Throws NotFoundError when the file is missing, FormatError when it is malformed.
  static std::shared_ptr<const SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const Header& header() const { return header_; }
  const TensorInfo* find(const std::string& name) const;
  // Start of a tensor's bytes inside the mapping.
  const uint8_t* data(const TensorInfo& info) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  Header header_;
  std::map<std::string, size_t> index_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
};

// Writes tensors given as raw bytes. Used by the tools and tests; data offsets are aligned.
struct RawTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel * dtype_size bytes
};
void write_safetensors(const std::string& path, const std::vector<RawTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace kyutai
