// random-mimi: writes a Mimi checkpoint with random weights for a configuration, for test and
// demo models (models/moshi-tiny) and for benchmarks on real shapes.
//   random-mimi CONFIG.json SEED OUTPUT.safetensors
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "kyutai/mimi.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fputs("usage: random-mimi CONFIG.json SEED OUTPUT.safetensors\n", stderr);
    return 2;
  }
  try {
    kyutai::Mimi::random(argv[1], std::strtoull(argv[2], nullptr, 10))->save(argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "random-mimi: %s\n", e.what());
    return 1;
  }
  return 0;
}
