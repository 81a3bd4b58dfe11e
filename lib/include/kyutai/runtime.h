// Process-wide settings of the tensor runtime. Torch-free.
#pragma once

namespace kyutai {

// Sets how many threads tensor kernels use. libtorch's OpenMP pool and OpenBLAS's own pthread
// pool would otherwise both start one thread per core and spin against each other; this gives
// the threads to one pool at a time (see docs/PERFORMANCE.md). n <= 0 means "all cores".
void set_num_threads(int n);
int num_threads();

}  // namespace kyutai
