#include "kyutai/io/params.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "kyutai/error.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/kernels/thread_pool.h"
#include "kyutai/weights/linear_weight.h"
#include "kyutai/safetensors.h"

namespace kyutai {

namespace {

// The one table of alternative names. Kyutai's published checkpoints store each attention
// module's projections fused (`P.in_proj_weight` = all `P.in_projs.{i}.weight` stacked on dim 0);
// older Mimi checkpoints use EnCodec's codebook buffer names.
struct Alias {
  const char* legacy;  // last name components in the file
  const char* target;  // the reference name; "{i}" marks a fused tensor split on dim 0
};
constexpr Alias kAliases[] = {
    {"in_proj_weight", "in_projs.{i}.weight"},
    {"in_proj.weight", "in_projs.{i}.weight"},
    {"out_proj.weight", "out_projs.{i}.weight"},
    {"inited", "_initialized"},
    {"cluster_size", "cluster_usage"},
    {"embed_avg", "embedding_sum"},
    {"embed_sum", "embedding_sum"},
};

// Where the tensor for one declared name comes from: a whole file tensor, or piece `piece` of
// `pieces` equal row blocks of a fused one.
struct Source {
  const TensorInfo* info = nullptr;
  int64_t piece = 0;
  int64_t pieces = 1;
};

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string replace_index(std::string pattern, int64_t i) {
  return pattern.replace(pattern.find("{i}"), 3, std::to_string(i));
}

at::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return at::kFloat;
    case DType::F16:
      return at::kHalf;
    case DType::BF16:
      return at::kBFloat16;
    case DType::I64:
      return at::kLong;
    case DType::I32:
      return at::kInt;
    case DType::U8:
      return at::kByte;
    case DType::BOOL:
      return at::kBool;
  }
  return at::kFloat;
}

DType from_scalar_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return DType::F32;
    case at::kHalf:
      return DType::F16;
    case at::kBFloat16:
      return DType::BF16;
    case at::kLong:
      return DType::I64;
    case at::kInt:
      return DType::I32;
    case at::kByte:
      return DType::U8;
    case at::kBool:
      return DType::BOOL;
    default:
      throw Error(std::string("cannot store dtype ") + c10::toString(t) + " in safetensors");
  }
}

std::string torch_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kBFloat16:
      return "bfloat16";
    case at::kHalf:
      return "float16";
    case at::kLong:
      return "int64";
    default:
      return c10::toString(t);
  }
}

// Maps every file tensor to the declared name(s) it provides.
std::map<std::string, Source> map_sources(const std::set<std::string>& declared,
                                          const SafetensorsFile& file) {
  std::map<std::string, Source> sources;
  auto claim = [&](const std::string& name, Source src, const std::string& from) {
    if (!sources.emplace(name, src).second)
      throw CheckpointError(
          file.path() + ": key '" + name + "' is given twice (again as '" + from + "')",
          file.path(), from);
  };
  for (const auto& info : file.header().tensors) {
    const std::string& key = info.name;
    const Alias* alias = nullptr;
    for (const auto& a : kAliases)
      if (key == a.legacy || ends_with(key, std::string(".") + a.legacy)) alias = &a;
    if (!alias || declared.count(key)) {
      claim(key, {&info}, key);
      continue;
    }
    const std::string prefix = key.substr(0, key.size() - std::string(alias->legacy).size());
    const std::string target = prefix + alias->target;
    if (target.find("{i}") == std::string::npos) {
      claim(target, {&info}, key);
      continue;
    }
    int64_t pieces = 0;
    while (declared.count(replace_index(target, pieces))) ++pieces;
    if (pieces == 0) {
      claim(key, {&info}, key);  // reported as unexpected below
      continue;
    }
    for (int64_t i = 0; i < pieces; ++i) claim(replace_index(target, i), {&info, i, pieces}, key);
  }
  return sources;
}

}  // namespace

at::Tensor tensor_view(const std::shared_ptr<const SafetensorsFile>& file, const TensorInfo& info) {
  const at::ScalarType type = to_scalar_type(info.dtype);
  void* ptr = const_cast<uint8_t*>(file->data(info));
  // The tensor keeps the mapping alive.
  auto keep = file;
  at::Tensor t = at::from_blob(
      ptr, info.shape, [keep](void*) mutable { keep.reset(); }, at::TensorOptions().dtype(type));
  if (reinterpret_cast<uintptr_t>(ptr) % dtype_size(info.dtype) != 0) t = t.clone();
  return t;
}

namespace {

at::Tensor load_one(const ParamSpec& spec, const Source& src,
                    const std::shared_ptr<const SafetensorsFile>& file, const at::Device& device) {
  const TensorInfo& info = *src.info;
  std::vector<int64_t> shape = info.shape;
  if (src.pieces > 1) {
    if (shape.empty() || shape[0] % src.pieces != 0)
      throw CheckpointError(file->path() + ": key '" + info.name + "' has shape " +
                                shape_to_string(shape) + ", which cannot be split into " +
                                std::to_string(src.pieces) + " blocks of " +
                                shape_to_string(spec.shape),
                            file->path(), info.name);
    shape[0] /= src.pieces;
  }
  if (shape != spec.shape) {
    std::string expected = shape_to_string(spec.shape);
    if (src.pieces > 1) {
      std::vector<int64_t> whole = spec.shape;
      whole[0] *= src.pieces;
      expected = shape_to_string(whole);
    }
    throw CheckpointError(file->path() + ": key '" + info.name + "': expected shape " + expected +
                              ", found " + shape_to_string(info.shape),
                          file->path(), info.name);
  }
  at::Tensor t = tensor_view(file, info);
  if (src.pieces > 1) t = t.narrow(0, src.piece * shape[0], shape[0]);
  const bool float_spec = at::isFloatingType(spec.dtype);
  if (float_spec != at::isFloatingType(t.scalar_type()))
    throw CheckpointError(file->path() + ": key '" + info.name + "' has dtype " +
                              dtype_name(info.dtype) + ", expected " + torch_dtype_name(spec.dtype),
                          file->path(), info.name);
  if (t.scalar_type() != spec.dtype) t = t.to(spec.dtype);
  if (t.device() != device) t = t.to(device);
  return t;
}

}  // namespace

Params Params::sub(const std::string& name) const {
  return Params(specs_, dtype_, prefix_.empty() ? name : prefix_ + "." + name);
}

void Params::add(const std::string& name, std::vector<int64_t> shape, at::Tensor& slot) const {
  add(name, std::move(shape), slot, dtype_);
}

void Params::add(const std::string& name, std::vector<int64_t> shape, at::Tensor& slot,
                 at::ScalarType dtype) const {
  specs_->push_back(
      {prefix_.empty() ? name : prefix_ + "." + name, std::move(shape), dtype, &slot});
}

void Params::add(const std::string& name, std::vector<int64_t> shape, LinearWeight& weight) const {
  add(name, std::move(shape), weight.tensor, dtype_);
  specs_->back().weight = &weight;
}

std::vector<KeyInfo> state_dict_keys(const std::vector<ParamSpec>& specs) {
  std::vector<KeyInfo> keys;
  for (const auto& s : specs) keys.push_back({s.name, s.shape, torch_dtype_name(s.dtype)});
  return keys;
}

std::vector<KeyInfo> checkpoint_keys(const std::vector<ParamSpec>& specs) {
  std::map<std::string, KeyInfo> fused;
  for (const auto& s : specs) {
    KeyInfo key{s.name, s.shape, torch_dtype_name(s.dtype)};
    for (const char* pattern : {".in_projs.", ".out_projs."}) {
      const size_t at = s.name.find(pattern);
      if (at == std::string::npos || !ends_with(s.name, ".weight")) continue;
      const bool in = pattern[1] == 'i';
      key.name = s.name.substr(0, at) + (in ? ".in_proj_weight" : ".out_proj.weight");
      auto it = fused.find(key.name);
      if (it != fused.end()) {
        it->second.shape[0] += s.shape[0];
        key.name.clear();
      }
    }
    if (!key.name.empty()) fused.emplace(key.name, key);
  }
  std::vector<KeyInfo> keys;
  for (auto& [name, key] : fused) keys.push_back(key);
  return keys;
}

void load_strict(const std::vector<ParamSpec>& specs,
                 const std::shared_ptr<const SafetensorsFile>& file, const at::Device& device,
                 const AfterLoad& after, const LoadProgress& progress) {
  std::set<std::string> declared;
  for (const auto& s : specs) declared.insert(s.name);
  const auto sources = map_sources(declared, *file);
  std::vector<std::string> missing;
  for (const auto& s : specs)
    if (!sources.count(s.name)) missing.push_back(s.name);
  if (!missing.empty())
    throw CheckpointError(
        file->path() + ": missing key '" + missing.front() + "'" +
            (missing.size() > 1 ? " (and " + std::to_string(missing.size() - 1) + " more)"
                                : std::string()),
        file->path(), missing.front());
  for (const auto& [name, src] : sources)
    if (!declared.count(name))
      throw CheckpointError(file->path() + ": unexpected key '" + src.info->name +
                                "' (the model has no tensor of that name)",
                            file->path(), src.info->name);
  int64_t total = 0, done = 0;
  for (const auto& s : specs) total += numel_of(s.shape);
  for (const auto& s : specs) {
    *s.slot = load_one(s, sources.at(s.name), file, device);
    if (after) after(s);
    done += numel_of(s.shape);
    if (progress && total > 0) progress(static_cast<double>(done) / static_cast<double>(total));
  }
}

namespace {

// On the CPU a private generator; on a GPU the device's own, seeded with `seed`, so the values
// are drawn there: drawing a 7B model's 7.7 billion values on the CPU takes about a minute. The
// values then depend on the device.
at::Generator random_generator(uint64_t seed, const at::Device& device) {
  if (device.is_cpu()) return at::detail::createCPUGenerator(seed);
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
  return gen;
}

uint64_t mix64(uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t name_hash(const std::string& name) {  // FNV-1a: stable across builds
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// Uniform values of standard deviation `sd`, element i from hash(seed, i), written straight in
// `dtype` (float32 or bfloat16, so a bfloat16 model makes no float32 copy): the same values
// whatever the number of threads.
template <class T>
void fill_uniform(T* data, int64_t n, uint64_t seed, double sd) {
  const float half_width = static_cast<float>(sd * std::sqrt(3.0));
  const uint64_t key = mix64(seed);
  kernels::parallel_ranges(n, 64 * kernels::num_threads(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint64_t bits = mix64(key + static_cast<uint64_t>(i)) >> 40;  // 24 bits
      const float unit = static_cast<float>(bits) * (2.0f / 16777216.0f) - 1.0f;  // [-1, 1)
      data[i] = static_cast<T>(half_width * unit);
    }
  });
}

at::Tensor uniform_matrix(const std::vector<int64_t>& shape, at::ScalarType dtype, uint64_t seed,
                          double sd) {
  at::Tensor t = at::empty(shape, dtype == at::kBFloat16 ? at::kBFloat16 : at::kFloat);
  if (t.scalar_type() == at::kBFloat16)
    fill_uniform(t.data_ptr<at::BFloat16>(), t.numel(), seed, sd);
  else
    fill_uniform(t.data_ptr<float>(), t.numel(), seed, sd);
  return t;
}

}  // namespace

void init_random(const std::vector<ParamSpec>& specs, uint64_t seed, const at::Device& device,
                 const AfterLoad& after, RandomDraw draw) {
  at::Generator gen = random_generator(seed, device);
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  for (const auto& s : specs) {
    const std::string& n = s.name;
    at::Tensor t;
    if (ends_with(n, "_initialized")) {
      t = at::ones(s.shape, opts);
    } else if (ends_with(n, "cluster_usage")) {
      t = at::rand(s.shape, gen, opts) * 1.5 + 0.5;
    } else if (ends_with(n, ".alpha") || (s.shape.size() == 1 && ends_with(n, ".weight"))) {
      t = at::randn(s.shape, gen, opts) * 0.1 + 1.0;  // norm scales
    } else if (s.shape.size() == 1 && ends_with(n, ".scale")) {
      t = at::randn(s.shape, gen, opts) * 0.05 + 0.1;  // layer scale
    } else if (s.shape.size() == 1) {
      t = at::randn(s.shape, gen, opts) * 0.1;  // biases
    } else {
      const int64_t numel = std::max<int64_t>(1, numel_of(s.shape));
      const double fan_in = static_cast<double>(numel / std::max<int64_t>(1, s.shape[0]));
      if (draw == RandomDraw::Uniform)
        t = uniform_matrix(s.shape, s.dtype, seed ^ name_hash(n), 1 / std::sqrt(fan_in));
      else
        t = at::randn(s.shape, gen, opts) / std::sqrt(fan_in);
    }
    *s.slot = t.to(device, s.dtype);
    if (after) after(s);
  }
}

std::map<std::string, at::Tensor> read_tensors(const std::string& path) {
  const auto file = SafetensorsFile::open(path);
  std::map<std::string, at::Tensor> tensors;
  for (const auto& info : file->header().tensors) tensors[info.name] = tensor_view(file, info);
  return tensors;
}

void write_tensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                   const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;
  std::vector<RawTensor> raw;
  for (const auto& [name, t] : tensors) {
    keep.push_back(t.to(at::kCPU).contiguous());
    const at::Tensor& c = keep.back();
    raw.push_back({name, from_scalar_type(c.scalar_type()), c.sizes().vec(), c.data_ptr()});
  }
  write_safetensors(path, raw, metadata);
}

AfterLoad pack_weights(WeightFormat format) {
  return [format](const ParamSpec& spec) {
    if (spec.weight) spec.weight->pack(format);
  };
}

int64_t count_elements(const std::vector<ParamSpec>& specs) {
  int64_t n = 0;
  for (const auto& s : specs) n += numel_of(s.shape);
  return n;
}

}  // namespace kyutai
