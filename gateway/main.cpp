// moshi-gateway: answers calls (SIP, AudioSocket, media streams) with Moshi, one conversation per call. See docs/GATEWAY.md.
#include <gst/gst.h>

#include <cstdio>

#include "common/config.h"
#include "gateway.h"

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  moshigw::Config config;
  std::string error;
  if (!moshigw::load_config(argc, argv, config, error)) {
    std::fprintf(stderr, "moshi-gateway: %s (see --help)\n", error.c_str());
    return 2;
  }
  int status = 0;
  {
    moshigw::Gateway gateway(config);
    if (gateway.start(error)) {
      gateway.run();
    } else {
      std::fprintf(stderr, "moshi-gateway: %s\n", error.c_str());
      status = 1;
    }
  }
  gst_deinit();
  return status;
}
