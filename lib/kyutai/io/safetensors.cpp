#include "kyutai/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kyutai/atomic_file.h"
#include "kyutai/error.h"

namespace kyutai {

namespace {

using nlohmann::json;

// The reference implementation (safetensors crate) refuses headers above 100 MB.
constexpr uint64_t kMaxHeaderSize = 100ull << 20;

struct DTypeName {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeName kDTypes[] = {
    {DType::F32, "F32", 4},   {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8},   {DType::I32, "I32", 4}, {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

[[noreturn]] void fail(const std::string& origin, const std::string& what) {
  throw FormatError(origin + ": not a valid safetensors file: " + what);
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint64_t as_u64(const json& value, const std::string& origin, const std::string& what) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return value.get<uint64_t>();
  fail(origin, what + " must be a non-negative integer");
}

DType parse_dtype(const json& value, const std::string& origin, const std::string& key) {
  if (value.is_string()) {
    const std::string s = value.get<std::string>();
    for (const auto& d : kDTypes)
      if (s == d.name) return d.dtype;
    fail(origin, "tensor '" + key + "' has unsupported dtype '" + s +
                     "' (supported: F32, F16, BF16, I64, I32, U8, BOOL)");
  }
  fail(origin, "tensor '" + key + "' has no dtype string");
}

// One entry of the header: {"dtype": ..., "shape": [...], "data_offsets": [b, e]}.
TensorInfo parse_entry(const std::string& key, const json& entry, uint64_t data_size,
                       const std::string& origin) {
  if (!entry.is_object()) fail(origin, "entry '" + key + "' is not an object");
  TensorInfo info;
  info.name = key;
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || shape_it == entry.end() || offsets_it == entry.end())
    fail(origin, "tensor '" + key + "' lacks dtype, shape or data_offsets");
  info.dtype = parse_dtype(*dtype_it, origin, key);
  if (!shape_it->is_array()) fail(origin, "shape of '" + key + "' is not an array");
  uint64_t numel = 1;
  for (const auto& dim : *shape_it) {
    const uint64_t d = as_u64(dim, origin, "shape of '" + key + "'");
    if (d > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, d, &numel))
      fail(origin, "shape of '" + key + "' overflows");
    info.shape.push_back(static_cast<int64_t>(d));
  }
  if (!offsets_it->is_array() || offsets_it->size() != 2)
    fail(origin, "data_offsets of '" + key + "' is not a pair");
  info.begin = as_u64((*offsets_it)[0], origin, "data_offsets of '" + key + "'");
  info.end = as_u64((*offsets_it)[1], origin, "data_offsets of '" + key + "'");
  if (info.begin > info.end || info.end > data_size)
    fail(origin, "data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                     "] of '" + key + "' are outside the data section of " +
                     std::to_string(data_size) + " bytes");
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(info.dtype)), &nbytes) ||
      nbytes != info.end - info.begin)
    fail(origin, "tensor '" + key + "' has " + std::to_string(info.end - info.begin) +
                     " bytes of data but its shape " + shape_to_string(info.shape) + " and dtype " +
                     dtype_name(info.dtype) + " need " + std::to_string(numel) + " x " +
                     std::to_string(dtype_size(info.dtype)));
  return info;
}

void parse_metadata(const json& value, Header& header, const std::string& origin) {
  if (!value.is_object()) fail(origin, "__metadata__ is not an object");
  for (const auto& [k, v] : value.items()) {
    if (!v.is_string()) fail(origin, "__metadata__ value of '" + k + "' is not a string");
    header.metadata[k] = v.get<std::string>();
  }
}

void check_overlaps(const std::vector<TensorInfo>& sorted, const std::string& origin) {
  const TensorInfo* furthest = nullptr;  // the non-empty tensor reaching furthest so far
  for (const auto& info : sorted) {
    if (info.begin == info.end) continue;
    if (furthest && info.begin < furthest->end)
      fail(origin,
           "tensors '" + furthest->name + "' and '" + info.name + "' overlap in the data section");
    if (!furthest || info.end > furthest->end) furthest = &info;
  }
}

}  // namespace

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

size_t dtype_size(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

const char* dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

Header parse_header(const uint8_t* data, size_t size, const std::string& origin) {
  if (size < 8)
    fail(origin, "file is " + std::to_string(size) + " bytes, too short for the header length");
  const uint64_t header_size = read_le64(data);
  if (header_size > size - 8)
    fail(origin, "header length " + std::to_string(header_size) + " runs past the end of the " +
                     std::to_string(size) + "-byte file");
  if (header_size > kMaxHeaderSize) fail(origin, "header is larger than 100 MB");
  const char* text = reinterpret_cast<const char*>(data + 8);
  json doc = json::parse(text, text + header_size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) fail(origin, "header is not valid JSON");
  if (!doc.is_object()) fail(origin, "header is not a JSON object");

  Header header;
  header.data_offset = 8 + header_size;
  const uint64_t data_size = size - header.data_offset;
  for (const auto& [key, entry] : doc.items()) {
    if (key == "__metadata__")
      parse_metadata(entry, header, origin);
    else
      header.tensors.push_back(parse_entry(key, entry, data_size, origin));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  check_overlaps(header.tensors, origin);
  return header;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) throw NotFoundError(path + ": no such file");
    throw Error(path + ": cannot open: " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FormatError(path + ": not a regular file");
  }
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_size_ = static_cast<size_t>(st.st_size);
  if (file->map_size_ > 0) {
    // Private and writable: an accidental in-place write to a weight copies that page instead of
    // faulting or touching the file.
    void* map = ::mmap(nullptr, file->map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error(path + ": mmap failed: " + std::strerror(err));
    }
    file->map_ = map;
  }
  ::close(fd);
  file->header_ = parse_header(static_cast<const uint8_t*>(file->map_), file->map_size_, path);
  for (size_t i = 0; i < file->header_.tensors.size(); ++i)
    file->index_[file->header_.tensors[i].name] = i;
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const {
  return static_cast<const uint8_t*>(map_) + header_.data_offset + info.begin;
}

void write_safetensors(const std::string& path, const std::vector<RawTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const auto& t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    const uint64_t nbytes = numel * dtype_size(t.dtype);
    offset = (offset + 7) / 8 * 8;
    offsets.push_back(offset);
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  // A new inode renamed into place: processes that have the old file mapped keep it.
  AtomicFile out(path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(text.size() >> (8 * i));
  out.write(len, 8);
  out.write(text.data(), text.size());
  uint64_t written = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string pad(offsets[i] - written, '\0');
    out.write(pad.data(), pad.size());
    const uint64_t nbytes =
        json(header[tensors[i].name]["data_offsets"])[1].get<uint64_t>() - offsets[i];
    out.write(tensors[i].data, nbytes);
    written = offsets[i] + nbytes;
  }
  out.commit();
}

}  // namespace kyutai
