#include "kyutai/config_json.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "kyutai/error.h"

namespace kyutai {

using nlohmann::json;

namespace detail {

JsonReader::JsonReader(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {
  if (!obj_.is_object()) throw ConfigError(where_ + " is not a JSON object");
}

const json* JsonReader::find(const std::string& key) const {
  auto it = obj_.find(key);
  return it == obj_.end() || it->is_null() ? nullptr : &*it;
}

bool JsonReader::has(const std::string& key) const {
  return obj_.contains(key);
}

[[noreturn]] void JsonReader::bad(const std::string& key, const std::string& what) const {
  throw ConfigError(where_ + ": '" + key + "' " + what);
}

const json& JsonReader::require(const std::string& key) const {
  const json* v = find(key);
  if (!v) bad(key, "is missing");
  return *v;
}

int JsonReader::get_int(const std::string& key, int fallback) const {
  const json* v = find(key);
  if (!v) return fallback;
  if (v->is_number_integer()) return v->get<int>();
  if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>())
    return static_cast<int>(v->get<double>());
  bad(key, "must be an integer");
}

int JsonReader::require_int(const std::string& key) const {
  require(key);
  return get_int(key, 0);
}

double JsonReader::get_double(const std::string& key, double fallback) const {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) bad(key, "must be a number");
  return v->get<double>();
}

bool JsonReader::get_bool(const std::string& key, bool fallback) const {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(key, "must be true or false");
  return v->get<bool>();
}

std::string JsonReader::get_string(const std::string& key, const std::string& fallback) const {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_string()) bad(key, "must be a string");
  return v->get<std::string>();
}

std::vector<int> JsonReader::get_ints(const std::string& key, std::vector<int> fallback) const {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_array()) bad(key, "must be a list of integers");
  std::vector<int> out;
  for (const auto& e : *v) {
    if (!e.is_number_integer()) bad(key, "must be a list of integers");
    out.push_back(e.get<int>());
  }
  return out;
}

std::optional<double> JsonReader::get_optional_double(const std::string& key,
                                                      std::optional<double> fallback) const {
  if (!has(key)) return fallback;
  const json* v = find(key);
  if (!v) return std::nullopt;  // explicit null
  return get_double(key, 0.0);
}

std::optional<int> JsonReader::get_optional_int(const std::string& key,
                                                std::optional<int> fallback) const {
  if (!has(key)) return fallback;
  if (!find(key)) return std::nullopt;
  return get_int(key, 0);
}

JsonReader JsonReader::child(const std::string& key) const {
  return JsonReader(require(key), where_ + "." + key);
}

json parse_json(const std::string& text, const std::string& origin) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw ConfigError(origin + ": not valid JSON");
  return doc;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw NotFoundError(path + ": cannot open the configuration file");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace detail

}  // namespace kyutai
