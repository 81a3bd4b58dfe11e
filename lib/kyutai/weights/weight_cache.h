// Internal: the quantized-weights cache. Quantizing the 7B from its bfloat16 checkpoint reads
// 15 GB and takes a while, so the packed arrays are written once to a safetensors file in the
// user's cache directory (never into the model repository) and memory-mapped by later loads.
//
// A cache file is named after its source's identity (canonical path, size, modification time,
// inode) and the weight format, and records both in its metadata with a checksum of its data.
// A file that is truncated, tampered with, made from another source or by another kernel layout
// is reported through `warn`, ignored and rebuilt: never trusted.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "kyutai/weights.h"

namespace kyutai {

namespace kernels {
struct PackedWeight;
}
class SafetensorsFile;

class WeightCache {
 public:
  // Looks for the cache of `source` in `format` and validates it whole (metadata, every tensor,
  // checksum). Never throws for a bad cache file: it is reported and ignored.
  WeightCache(const std::string& source, WeightFormat format, const WeightCacheOptions& options);
  ~WeightCache();

  // The cached arrays of `name` [out, in], or null (no cache, or not in it).
  std::shared_ptr<const kernels::PackedWeight> find(const std::string& name, int64_t out,
                                                    int64_t in) const;
  // Records a weight packed from the source, for write().
  void add(const std::string& name, std::shared_ptr<const kernels::PackedWeight> weight);
  // Writes every recorded weight when anything had to be packed from the source (a temporary
  // file renamed into place). A cache directory that cannot be written is reported, not fatal.
  void write_if_built();

 private:
  bool validate(const std::shared_ptr<const SafetensorsFile>& file, std::string* why) const;
  void report(const std::string& what) const;
  void tell(const std::string& what) const;

  std::string identity_, path_;
  WeightFormat format_;
  WeightCacheOptions options_;
  std::shared_ptr<const SafetensorsFile> file_;
  std::map<std::string, std::shared_ptr<const kernels::PackedWeight>> entries_;
  bool built_ = false;
};

// 64-bit checksum of a byte range (fast, not cryptographic: it detects corruption).
uint64_t checksum64(const uint8_t* data, size_t size, uint64_t seed = 0);

}  // namespace kyutai
