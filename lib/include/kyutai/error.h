// Typed errors thrown by the kyutai library. Torch-free, so callers (the GStreamer elements,
// the command-line tool) can map them to their own error domains without pulling in libtorch.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace kyutai {

// Base class of every error the library throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file or model location that does not exist.
class NotFoundError : public Error {
 public:
  using Error::Error;
};

// A file that exists but is not a valid safetensors file (truncated, bad header, bad offsets...).
class FormatError : public Error {
 public:
  using Error::Error;
};

// A valid safetensors file whose tensors do not fit the module tree: missing, unexpected or
// mis-shaped keys. Carries the file and key so a caller can report them precisely.
class CheckpointError : public Error {
 public:
  CheckpointError(const std::string& message, std::string file, std::string key)
      : Error(message), file_(std::move(file)), key_(std::move(key)) {}
  const std::string& file() const { return file_; }
  const std::string& key() const { return key_; }

 private:
  std::string file_;
  std::string key_;
};

// A configuration file or setting that cannot describe a model.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Wrong input to a model call: wrong sample count, out-of-range codes, too many codebooks.
class InputError : public Error {
 public:
  using Error::Error;
};

// "[1, 2, 3]", for messages.
std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace kyutai
