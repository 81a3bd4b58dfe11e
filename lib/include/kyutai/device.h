// Device names the library runs on. Torch-free.
#pragma once

#include <string>

namespace kyutai {

// "cpu", "cuda", "cuda:N": throws ConfigError for anything else, or for CUDA in a CPU-only build.
void check_device(const std::string& device);

}  // namespace kyutai
