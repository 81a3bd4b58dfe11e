#include "kyutai/weights/weight_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/safetensors.h"

namespace kyutai {

namespace fs = std::filesystem;

namespace {

// Bumped whenever the kernels' packed layout changes: older cache files are then rebuilt.
constexpr const char* kLayout = "kyutai-kernels-1";

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ull, kPrime2 = 0xC2B2AE3D27D4EB4Full;

uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

uint64_t mix(uint64_t acc, uint64_t word) {
  return rotl(acc + word * kPrime2, 31) * kPrime1;
}

// What makes a source file itself: a replaced or rewritten file gets another identity.
std::string identity_of(const std::string& source) {
  struct stat st {};
  const std::string path = canonical_path(source);
  if (::stat(path.c_str(), &st) != 0) throw NotFoundError(source + ": cannot stat the weights");
  return path + "|size=" + std::to_string(st.st_size) +
         "|mtime=" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) +
         "|inode=" + std::to_string(st.st_ino);
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string scales_name(const std::string& name) {
  return name + ".scales";
}

// The checksum of every tensor's bytes, in name order.
uint64_t file_checksum(const SafetensorsFile& file) {
  std::vector<const TensorInfo*> infos;
  for (const auto& info : file.header().tensors) infos.push_back(&info);
  std::sort(infos.begin(), infos.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->name < b->name; });
  uint64_t h = 0;
  for (const TensorInfo* info : infos) h = checksum64(file.data(*info), info->end - info->begin, h);
  return h;
}

}  // namespace

uint64_t checksum64(const uint8_t* data, size_t size, uint64_t seed) {
  // Four independent lanes keep the multiplier busy; the tail is folded in byte by byte.
  uint64_t lanes[4] = {seed + kPrime1, seed + kPrime2, seed, seed - kPrime1};
  size_t i = 0;
  for (; i + 32 <= size; i += 32)
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, data + i + 8 * l, 8);
      lanes[l] = mix(lanes[l], w);
    }
  uint64_t h = rotl(lanes[0], 1) + rotl(lanes[1], 7) + rotl(lanes[2], 12) + rotl(lanes[3], 18);
  for (; i < size; ++i) h = mix(h, data[i]);
  return mix(h, size);
}

std::string default_weight_cache_dir() {
  if (const char* dir = std::getenv("KYUTAI_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "gst-moshi").string();
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : "/tmp") / ".cache" / "gst-moshi").string();
}

WeightCache::WeightCache(const std::string& source, WeightFormat format,
                         const WeightCacheOptions& options)
    : identity_(identity_of(source)), format_(format), options_(options) {
  if (!options_.enabled) return;
  const std::string dir = options_.dir.empty() ? default_weight_cache_dir() : options_.dir;
  const uint64_t key = checksum64(reinterpret_cast<const uint8_t*>(identity_.data()),
                                  identity_.size(), static_cast<uint64_t>(format));
  path_ = (fs::path(dir) / (fs::path(source).stem().string() + "." + weight_format_name(format) +
                            "." + hex64(key) + ".safetensors"))
              .string();
  if (!file_exists(path_)) return;
  std::string why;
  try {
    auto file = SafetensorsFile::open(path_);
    if (validate(file, &why)) file_ = std::move(file);
  } catch (const Error& e) {
    why = e.what();
  }
  if (file_)
    tell("quantized weights from the cache " + path_);
  else
    report("ignoring the quantized-weights cache " + path_ + " (" + why + "); rebuilding it");
}

WeightCache::~WeightCache() = default;

bool WeightCache::validate(const std::shared_ptr<const SafetensorsFile>& file,
                           std::string* why) const {
  const auto& meta = file->header().metadata;
  auto value = [&](const char* key) {
    auto it = meta.find(key);
    return it == meta.end() ? std::string() : it->second;
  };
  if (value("source") != identity_) {
    *why = "it was made from another file: " + value("source");
  } else if (value("format") != weight_format_name(format_) || value("layout") != kLayout) {
    *why = "it holds " + value("format") + " weights in layout '" + value("layout") + "'";
  } else if (value("checksum") != hex64(file_checksum(*file))) {
    *why = "its checksum does not match its data";
  } else {
    return true;
  }
  return false;
}

std::shared_ptr<const kernels::PackedWeight> WeightCache::find(const std::string& name, int64_t out,
                                                               int64_t in) const {
  if (!file_) return nullptr;
  const TensorInfo* data = file_->find(name);
  const TensorInfo* scales = file_->find(scales_name(name));
  if (!data) return nullptr;
  // The expected layout, from the format and the declared shape.
  kernels::PackedWeight want;
  want.format = format_;
  want.out = out;
  want.in = in;
  want.in_padded = kernels::padded_inputs(want.format, in);
  const std::vector<int64_t> data_shape = {out, want.bytes_per_row()};
  const std::vector<int64_t> scale_shape = {out, want.in_padded / kernels::kGroup};
  if (data->dtype != DType::U8 || data->shape != data_shape) return nullptr;
  if (want.scale_count() &&
      (!scales || scales->dtype != DType::F16 || scales->shape != scale_shape))
    return nullptr;
  const auto* scale_ptr =
      scales ? reinterpret_cast<const uint16_t*>(file_->data(*scales)) : nullptr;
  // The mapping stays alive as long as any weight viewing it.
  return std::make_shared<const kernels::PackedWeight>(kernels::PackedWeight::view(
      format_, out, in, file_->data(*data), scale_ptr, file_));
}

void WeightCache::add(const std::string& name,
                      std::shared_ptr<const kernels::PackedWeight> weight) {
  if (!file_ || !file_->find(name)) built_ = true;
  entries_[name] = std::move(weight);
}

void WeightCache::write_if_built() {
  if (!options_.enabled || !built_) return;
  std::vector<RawTensor> raw;
  uint64_t h = 0;
  // write_safetensors keeps the given order; the checksum goes by name, as validate reads it.
  std::map<std::string, RawTensor> by_name;
  for (const auto& [name, w] : entries_) {
    by_name[name] = {name, DType::U8, {w->out, w->bytes_per_row()}, w->data};
    if (w->scales)
      by_name[scales_name(name)] = {
          scales_name(name), DType::F16, {w->out, w->in_padded / kernels::kGroup}, w->scales};
  }
  for (const auto& [name, t] : by_name) {
    const size_t bytes = static_cast<size_t>(t.shape[0] * t.shape[1]) * dtype_size(t.dtype);
    h = checksum64(static_cast<const uint8_t*>(t.data), bytes, h);
    raw.push_back(t);
  }
  try {
    fs::create_directories(fs::path(path_).parent_path());
    write_safetensors(path_, raw,
                      {{"source", identity_},
                       {"format", weight_format_name(format_)},
                       {"layout", kLayout},
                       {"checksum", hex64(h)}});
    tell("quantized weights written to the cache " + path_);
  } catch (const std::exception& e) {
    report("cannot write the quantized-weights cache " + path_ + ": " + e.what());
  }
}

void WeightCache::report(const std::string& what) const {
  if (options_.warn) options_.warn(what);
}

void WeightCache::tell(const std::string& what) const {
  if (options_.info) options_.info(what);
}

}  // namespace kyutai
