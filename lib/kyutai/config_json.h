// Internal: typed access to JSON configuration objects, with errors that name the file and key.
// Knows JSON, not the model configurations (config.cpp reads those with it).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace kyutai::detail {

class JsonReader {
 public:
  JsonReader(const nlohmann::json& obj, std::string where);
  bool has(const std::string& key) const;
  const nlohmann::json* find(const std::string& key) const;  // null when absent or null
  const nlohmann::json& require(const std::string& key) const;
  int get_int(const std::string& key, int fallback) const;
  int require_int(const std::string& key) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<int> get_ints(const std::string& key, std::vector<int> fallback) const;
  // Absent: fallback; explicit null: nullopt.
  std::optional<double> get_optional_double(const std::string& key,
                                            std::optional<double> fallback) const;
  std::optional<int> get_optional_int(const std::string& key, std::optional<int> fallback) const;
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
