// libFuzzer target for the safetensors header parser: any input must either parse or raise a
// FormatError; anything else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>

#include "kyutai/error.h"
#include "kyutai/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const kyutai::Header header = kyutai::parse_header(data, size, "fuzz-input");
    // Every accepted tensor must lie inside the input.
    for (const auto& t : header.tensors)
      if (header.data_offset + t.end > size) __builtin_trap();
  } catch (const kyutai::FormatError&) {
  }
  return 0;
}
