#include "kyutai/hub.h"

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "kyutai/config.h"
#include "kyutai/io/config_json.h"
#include "kyutai/error.h"

namespace kyutai {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : std::string();
}

std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) == 0 && !env("HOME").empty()) return env("HOME") + path.substr(1);
  return path;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// The config.json of a directory, parsed, or null when there is none.
nlohmann::json dir_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  if (!file_exists(path)) return nullptr;
  return detail::parse_json(detail::read_text_file(path), path);
}

std::vector<std::string> safetensors_in(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto ext = entry.path().extension().string();
    if ((ext == ".safetensors" || ext == ".sft") && file_exists(entry.path().string()))
      found.push_back(entry.path().string());
  }
  return found;
}

MimiFiles mimi_in_dir(const std::string& dir) {
  const nlohmann::json config = dir_config(dir);
  const std::string config_path = (fs::path(dir) / "config.json").string();
  auto in_dir = [&](const std::string& name) { return (fs::path(dir) / name).string(); };
  if (config.is_object() && config.contains("seanet")) {
    // A Mimi-only directory: its own config and one weights file.
    const std::string weights = in_dir("model.safetensors");
    if (file_exists(weights)) return {weights, config_path};
    const auto found = safetensors_in(dir);
    if (found.size() == 1) return {found[0], config_path};
    throw NotFoundError(dir + ": has a Mimi config.json but no single .safetensors file beside it");
  }
  MimiFiles files;
  files.weights = in_dir(kMimiWeightsName);
  if (config.is_object()) {
    if (config.contains("mimi_name") && config["mimi_name"].is_string())
      files.weights = in_dir(config["mimi_name"].get<std::string>());
    if (config.contains("mimi_config_name") && config["mimi_config_name"].is_string())
      files.config = in_dir(config["mimi_config_name"].get<std::string>());
  }
  if (!file_exists(files.weights))
    throw NotFoundError(dir + ": no Mimi weights (looked for " + files.weights + ")");
  if (!files.config.empty() && !file_exists(files.config))
    throw NotFoundError(dir + ": config.json names a Mimi config that is missing: " + files.config);
  return files;
}

}  // namespace

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

std::string canonical_path(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::canonical(path, ec);
  return ec ? path : p.string();
}

bool dir_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

std::string hf_hub_cache() {
  if (!env("HF_HUB_CACHE").empty()) return expand_home(env("HF_HUB_CACHE"));
  if (!env("HUGGINGFACE_HUB_CACHE").empty()) return expand_home(env("HUGGINGFACE_HUB_CACHE"));
  std::string home = env("HF_HOME");
  if (home.empty()) {
    const std::string xdg = env("XDG_CACHE_HOME");
    home = (xdg.empty() ? std::string("~/.cache") : xdg) + "/huggingface";
  }
  return expand_home(home) + "/hub";
}

bool is_repo_id(const std::string& spec) {
  if (spec.empty() || spec[0] == '/' || spec[0] == '.' || spec[0] == '~') return false;
  const size_t slash = spec.find('/');
  return slash != std::string::npos && slash > 0 && slash + 1 < spec.size() &&
         spec.find('/', slash + 1) == std::string::npos;
}

std::optional<std::string> hf_snapshot(const std::string& repo_id, const std::string& revision) {
  if (!is_repo_id(repo_id)) return std::nullopt;
  std::string folder = "models--" + repo_id;
  folder.replace(folder.find('/'), 1, "--");
  const fs::path repo = fs::path(hf_hub_cache()) / folder;
  std::string commit = revision;
  const fs::path ref = repo / "refs" / revision;
  if (file_exists(ref.string())) commit = trim(detail::read_text_file(ref.string()));
  const fs::path snapshot = repo / "snapshots" / commit;
  if (!dir_exists(snapshot.string())) return std::nullopt;
  return snapshot.string();
}

std::string resolve_model_path(const std::string& spec) {
  if (file_exists(spec) || dir_exists(spec)) return spec;
  if (auto snapshot = hf_snapshot(spec)) return *snapshot;
  std::string message = "model '" + spec + "' not found: it is not a file or directory";
  if (is_repo_id(spec))
    message += ", and repository " + spec + " is not in the Hugging Face cache " + hf_hub_cache() +
               " (download it first, for example with models/download.sh)";
  throw NotFoundError(message);
}

MimiFiles locate_mimi(const std::string& spec) {
  const std::string path = resolve_model_path(spec);
  if (dir_exists(path)) return mimi_in_dir(path);
  MimiFiles files{path, ""};
  const std::string sibling = (fs::path(path).parent_path() / "config.json").string();
  if (file_exists(sibling) && json_has_key(detail::read_text_file(sibling), "seanet"))
    files.config = sibling;
  return files;
}

MoshiFiles locate_moshi(const std::string& spec) {
  const std::string path = resolve_model_path(spec);
  const fs::path dir = dir_exists(path) ? fs::path(path) : fs::path(path).parent_path();
  MoshiFiles files;
  files.path = path;
  files.dir = dir.string();
  if (!dir_exists(path) && fs::path(path).extension() == ".json")
    files.config = path;
  else if (file_exists((dir / "config.json").string()))
    files.config = (dir / "config.json").string();
  if (files.config.empty()) {
    files.lm_config = LmConfig::moshi_7b_2024();
  } else {
    const std::string text = detail::read_text_file(files.config);
    if (json_has_key(text, "seanet"))
      throw ConfigError(files.config + " describes a Mimi codec, not a Moshi language model");
    files.lm_config = LmConfig::from_json(text, files.config);
  }
  const LmConfig& config = files.lm_config;
  auto in_dir = [&](const std::string& name, const char* fallback) {
    return (dir / (name.empty() ? std::string(fallback) : name)).string();
  };
  const bool weights_given = file_exists(path) && fs::path(path).extension() != ".json";
  files.weights = weights_given ? path : in_dir(config.moshi_name, kMoshiWeightsName);
  files.tokenizer = in_dir(config.tokenizer_name, kTextTokenizerName);
  if (!file_exists(files.weights))
    throw NotFoundError(dir.string() + ": no Moshi weights (looked for " + files.weights + ")");
  if (!file_exists(files.tokenizer))
    throw NotFoundError(dir.string() + ": no text tokenizer (looked for " + files.tokenizer + ")");
  files.mimi.weights = in_dir(config.mimi_name, kMimiWeightsName);
  if (!config.mimi_config_name.empty()) files.mimi.config = in_dir(config.mimi_config_name, "");
  if (!file_exists(files.mimi.weights)) files.mimi = MimiFiles();
  return files;
}

}  // namespace kyutai
