// How long OpenBLAS's idle workers poll before they sleep. Debian's libopenblas0-pthread polls
// for 2^28 cycles (about 0.1 s) after each call: after a frame's Mimi convolutions, its workers
// then hold the cores the next LM step needs, and that step takes twice its time
// (docs/PERFORMANCE.md, "The random doubling"). OpenBLAS reads its OPENBLAS_THREAD_TIMEOUT
// setting once, as it loads, through this exported function, called through the PLT: a
// definition in the program or plugin that loads it comes first in the symbol lookup and is
// the one used. So this one answers: the environment's setting when there is one, else 2^17
// cycles (about 50 us, the kernels' own pool's poll), after which the workers sleep.
//
// Compiled into every program and plugin that links the library (kyutai_dep's sources), not
// into the static library, whose symbols the plugins keep local.
#include <cstdlib>

extern "C" __attribute__((visibility("default"))) int openblas_thread_timeout() {
  constexpr int kPollLog2Cycles = 17;
  const char* setting = std::getenv("OPENBLAS_THREAD_TIMEOUT");
  if (setting != nullptr && *setting != '\0') return std::atoi(setting);
  return kPollLog2Cycles;
}
