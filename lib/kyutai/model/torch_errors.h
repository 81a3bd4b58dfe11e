// Internal: keeps libtorch's exception type inside the library. The public API promises
// kyutai::Error subclasses only.
#pragma once

#include <c10/util/Exception.h>

#include <string>

#include "kyutai/error.h"

namespace kyutai {

// Runs f, turning a c10::Error into a kyutai::Error carrying its first line.
template <class F>
auto translate_torch_errors(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    throw Error("libtorch: " + msg.substr(0, msg.find('\n')));
  }
}

}  // namespace kyutai
