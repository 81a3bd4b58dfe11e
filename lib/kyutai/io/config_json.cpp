#include "kyutai/io/config_json.h"

#include <cmath>
#include <cstdint>
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

namespace {

// The value of an integral JSON number, when it fits in int64 (floats included: "dim": 4096.0).
std::optional<int64_t> integral_value(const json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_number_float()) return std::nullopt;
  const double d = v.get<double>();
  // 2^63 is exact in double; anything below it in magnitude converts without overflow.
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) >= 9223372036854775808.0)
    return std::nullopt;
  return static_cast<int64_t>(d);
}

// The value of `v` when it is an integer (integral floats included) within `range`.
std::optional<int> int_in(const json& v, IntRange range) {
  const std::optional<int64_t> i = integral_value(v);
  if (!i || *i < range.lo || *i > range.hi) return std::nullopt;
  return static_cast<int>(*i);
}

std::string range_text(IntRange r) {
  return "[" + std::to_string(r.lo) + ", " + std::to_string(r.hi) + "]";
}

std::string range_text(RealRange r) {
  std::ostringstream s;
  s << "a finite number in [" << r.lo << ", " << r.hi << "]";
  return s.str();
}

}  // namespace

int JsonReader::get_int(const std::string& key, int fallback, IntRange range) const {
  const json* v = find(key);
  if (!v) return fallback;
  const std::optional<int> i = int_in(*v, range);
  if (!i) bad(key, "must be an integer in " + range_text(range) + ", not " + v->dump());
  return *i;
}

int JsonReader::require_int(const std::string& key, IntRange range) const {
  require(key);
  return get_int(key, 0, range);
}

double JsonReader::get_double(const std::string& key, double fallback, RealRange range) const {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) bad(key, "must be a number");
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < range.lo || d > range.hi)
    bad(key, "must be " + range_text(range) + ", not " + v->dump());
  return d;
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

std::vector<int> JsonReader::get_ints(const std::string& key, std::vector<int> fallback,
                                      IntRange range) const {
  const json* v = find(key);
  if (!v) return fallback;
  const std::string refusal =
      "must be a list of integers in " + range_text(range) + ", not " + v->dump();
  if (!v->is_array()) bad(key, refusal);
  std::vector<int> out;
  for (const auto& e : *v) {
    const std::optional<int> i = int_in(e, range);
    if (!i) bad(key, refusal);
    out.push_back(*i);
  }
  return out;
}

std::optional<double> JsonReader::get_optional_double(const std::string& key,
                                                      std::optional<double> fallback,
                                                      RealRange range) const {
  if (!has(key)) return fallback;
  const json* v = find(key);
  if (!v) return std::nullopt;  // explicit null
  return get_double(key, 0.0, range);
}

std::optional<int> JsonReader::get_optional_int(const std::string& key, std::optional<int> fallback,
                                                IntRange range) const {
  if (!has(key)) return fallback;
  if (!find(key)) return std::nullopt;
  return get_int(key, 0, range);
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
