// Internal: typed access to JSON configuration objects, with errors that name the file and key.
// Knows JSON, not the model configurations (config.cpp reads those with it).
#pragma once

#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace kyutai::detail {

// Inclusive bounds of a number read from a configuration. Integers are always within int, and
// reals always finite, so nothing read can overflow a conversion.
struct IntRange {
  int lo = std::numeric_limits<int>::min();
  int hi = std::numeric_limits<int>::max();
};
struct RealRange {
  double lo = -std::numeric_limits<double>::max();
  double hi = std::numeric_limits<double>::max();
};

class JsonReader {
 public:
  JsonReader(const nlohmann::json& obj, std::string where);
  bool has(const std::string& key) const;
  const nlohmann::json* find(const std::string& key) const;  // null when absent or null
  const nlohmann::json& require(const std::string& key) const;
  // An integer (a JSON integer, or a float with an integral value) within `range`; anything
  // else is a ConfigError naming the key, the range and the value.
  int get_int(const std::string& key, int fallback, IntRange range = {}) const;
  int require_int(const std::string& key, IntRange range = {}) const;
  // A finite number within `range`.
  double get_double(const std::string& key, double fallback, RealRange range = {}) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  // A list of integers, each as get_int takes it.
  std::vector<int> get_ints(const std::string& key, std::vector<int> fallback,
                            IntRange range = {}) const;
  // Absent: fallback; explicit null: nullopt.
  std::optional<double> get_optional_double(const std::string& key, std::optional<double> fallback,
                                            RealRange range = {}) const;
  std::optional<int> get_optional_int(const std::string& key, std::optional<int> fallback,
                                      IntRange range = {}) const;
  JsonReader child(const std::string& key) const;
  [[noreturn]] void bad(const std::string& key, const std::string& what) const;
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& obj_;
  std::string where_;
};

nlohmann::json parse_json(const std::string& text, const std::string& origin);
std::string read_text_file(const std::string& path);

}  // namespace kyutai::detail
