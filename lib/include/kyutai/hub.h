// Finding model files: plain paths, directories laid out like Kyutai's model repositories, and
// repositories in the local Hugging Face cache (never downloaded). Torch-free.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kyutai/config.h"

namespace kyutai {

// File names Kyutai's repositories use when their config.json does not name them.
inline constexpr const char* kMimiWeightsName = "tokenizer-e351c8d8-checkpoint125.safetensors";
inline constexpr const char* kMoshiWeightsName = "model.safetensors";
inline constexpr const char* kTextTokenizerName = "tokenizer_spm_32k_3.model";

// The hub cache directory, resolved as huggingface_hub does: $HF_HUB_CACHE, else
// $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub.
std::string hf_hub_cache();

// "org/name" (no leading '/' or '.', exactly one slash).
bool is_repo_id(const std::string& spec);

// The snapshot directory of `repo_id` at `revision` (a branch or tag through refs/, or a commit
// hash) in the local cache, if it is there.
std::optional<std::string> hf_snapshot(const std::string& repo_id,
                                       const std::string& revision = "main");

// Turns a model argument (file, directory or repo id) into a directory or file path that exists.
// Throws NotFoundError explaining where it looked.
std::string resolve_model_path(const std::string& spec);

struct MimiFiles {
  std::string weights;
  std::string config;  // empty: the released configuration
};

// Locates Mimi from a weights file (a Mimi config.json beside it is used), a directory (a Mimi
// config.json with model.safetensors, or a Kyutai repository whose config.json names
// mimi_name / mimi_config_name, or the released file name), or a cached repo id.
MimiFiles locate_mimi(const std::string& spec);

struct MoshiFiles {
  std::string path;       // the resolved model argument: directory, config.json or weights file
  std::string dir;        // the repository directory holding the files
  std::string config;     // the LM's config.json; empty: the Moshi 7B defaults
  LmConfig lm_config;     // `config` parsed once, here; Moshi::load uses it as it is
  std::string weights;    // LM weights
  std::string tokenizer;  // sentencepiece text tokenizer
  MimiFiles mimi;         // empty weights when the repository has no Mimi

  // The Mimi codebooks the LM needs encoded (LmConfig::mimi_codebooks).
  int mimi_codebooks() const { return lm_config.mimi_codebooks(); }
};

// Locates Moshi from a directory laid out like a Kyutai repository (config.json naming
// moshi_name, tokenizer_name, mimi_name, mimi_config_name; without config.json the 7B file
// names), a cached repo id, a config.json, or the LM weights file, which is then the one used
// whatever config.json names. Reads config.json once. Throws NotFoundError naming the missing
// file, ConfigError for an unreadable config.
MoshiFiles locate_moshi(const std::string& spec);

bool file_exists(const std::string& path);
// The canonical form of an existing path (links and "." resolved); the path itself otherwise.
std::string canonical_path(const std::string& path);
bool dir_exists(const std::string& path);

}  // namespace kyutai
