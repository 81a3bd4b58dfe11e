#include "kyutai/device.h"

#include <ATen/Context.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include "kyutai/error.h"

namespace kyutai {

void check_device(const std::string& device) {
  try {
    const at::Device d(device);
    if (d.is_cuda() && !at::hasCUDA())
      throw ConfigError("device '" + device +
                        "' needs a CUDA build of libtorch (build with -Dtorch_dir=...); this one "
                        "is CPU-only");
    if (!d.is_cpu() && !d.is_cuda())
      throw ConfigError("device '" + device + "' is not supported; use cpu, cuda or cuda:N");
  } catch (const c10::Error&) {
    throw ConfigError("'" + device + "' is not a device name; use cpu, cuda or cuda:N");
  }
}

}  // namespace kyutai
