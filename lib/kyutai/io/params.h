// The module tree's parameter list and the strict checkpoint loader.
//
// Every module declares its tensors under the reference's exact state_dict names; the list of
// declarations (ParamSpec) is the model's key manifest. Loading fills each declared slot from a
// safetensors file and fails on any missing, unexpected or mis-shaped key. Nothing here allocates
// tensor memory until load time, so a 7B tree can be declared and checked for free.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kyutai/weights.h"
#include "kyutai/progress.h"

namespace kyutai {

class LinearWeight;
class SafetensorsFile;
struct TensorInfo;

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  at::ScalarType dtype;
  at::Tensor* slot;  // where the loaded tensor goes; owned by the module
  LinearWeight* weight = nullptr;  // the product weight `slot` belongs to, if any
};

// Called after each tensor is loaded or made, so that product weights can be packed one at a
// time and the checkpoint's copy released before the next is read.
using AfterLoad = std::function<void(const ParamSpec&)>;

// A prefix into a shared declaration list: `p.sub("layers").sub(3).add("weight", ...)` declares
// "layers.3.weight".
class Params {
 public:
  explicit Params(std::vector<ParamSpec>* specs, at::ScalarType dtype = at::kFloat)
      : specs_(specs), dtype_(dtype) {}
  Params sub(const std::string& name) const;
  Params sub(size_t index) const { return sub(std::to_string(index)); }
  // Declares a floating-point tensor in this tree's dtype.
  void add(const std::string& name, std::vector<int64_t> shape, at::Tensor& slot) const;
  // Declares a tensor that always has `dtype`, whatever the tree's dtype (float32 norms, buffers).
  void add(const std::string& name, std::vector<int64_t> shape, at::Tensor& slot,
           at::ScalarType dtype) const;
  // Declares the weight [out, in] of a product layer.
  void add(const std::string& name, std::vector<int64_t> shape, LinearWeight& weight) const;
  at::ScalarType dtype() const { return dtype_; }

 private:
  Params(std::vector<ParamSpec>* specs, at::ScalarType dtype, std::string prefix)
      : specs_(specs), dtype_(dtype), prefix_(std::move(prefix)) {}
  std::vector<ParamSpec>* specs_;
  at::ScalarType dtype_;
  std::string prefix_;
};

// One key of a manifest: what a checkpoint holds under that name.
struct KeyInfo {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // PyTorch spelling: "float32", "bfloat16"
};

// The declared tensors under their reference state_dict names, in declaration order.
std::vector<KeyInfo> state_dict_keys(const std::vector<ParamSpec>& specs);
// The same tensors as Kyutai's published checkpoints name them: attention projections fused into
// `in_proj_weight` / `out_proj.weight`. Sorted by name.
std::vector<KeyInfo> checkpoint_keys(const std::vector<ParamSpec>& specs);

// Fills every slot from `file`. Accepts the reference names and the legacy/fused ones (see the
// alias table in params.cpp). Floating tensors are converted to each spec's dtype; a tensor whose
// stored dtype already matches points into the file's mapping without a copy.
// Throws CheckpointError naming the file and key on any mismatch. `progress` is told the fraction
// of the declared elements loaded after each tensor.
void load_strict(const std::vector<ParamSpec>& specs,
                 const std::shared_ptr<const SafetensorsFile>& file, const at::Device& device,
                 const AfterLoad& after = {}, const LoadProgress& progress = {});

// How init_random draws the matrices. Normal: libtorch's generator, one thread (about a minute
// per billion values). Uniform: the same variance, uniform, from a counter-based hash on the
// kernels' threads, for benchmarks, whose speed does not depend on the values (a 7B model in
// seconds instead of minutes). Either way the same seed gives the same values.
enum class RandomDraw { Normal, Uniform };

// Fills every slot with random values (benchmarks, tests): normal(0, 1/sqrt(fan_in)) for
// weights, 1 + 0.1*normal for norm scales, and the codebook buffers made usable. Drawn on
// `device`: the same seed gives the same values on the CPU, other values on a GPU.
void init_random(const std::vector<ParamSpec>& specs, uint64_t seed, const at::Device& device,
                 const AfterLoad& after = {}, RandomDraw draw = RandomDraw::Normal);

// One tensor of a mapped file: a view of the mapping (which it keeps alive) when its data is
// aligned for its dtype, a copy otherwise.
at::Tensor tensor_view(const std::shared_ptr<const SafetensorsFile>& file, const TensorInfo& info);
// Every tensor of a safetensors file, pointing into its mapping where possible.
std::map<std::string, at::Tensor> read_tensors(const std::string& path);
// Writes CPU tensors (converted to contiguous) as a safetensors file.
void write_tensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                   const std::map<std::string, std::string>& metadata = {});

// An AfterLoad that packs each product weight into `format` as soon as it is loaded.
AfterLoad pack_weights(WeightFormat format);

// Total number of elements over the declared tensors.
int64_t count_elements(const std::vector<ParamSpec>& specs);

}  // namespace kyutai
