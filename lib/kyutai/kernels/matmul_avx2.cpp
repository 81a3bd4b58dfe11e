// AVX2 + FMA + F16C kernels, for CPUs without AVX-512: matmul_body.h on the Avx2 traits, and
// the AVX2 attention head (attention_avx2.cpp). The portable activation quantizer serves here.
// Compiled with those target flags, so everything here has internal linkage and only the table is
// visible (see kernel_table.h).
#include "kyutai/kernels/simd_avx2.h"
// The bodies after the traits they are instantiated with.
#include "kyutai/kernels/matmul_body.h"

namespace kyutai::kernels::detail {

const KernelTable& avx2_kernels() {
  static constexpr KernelTable table = matmul_table<Avx2>(quantize_row_scalar, attend_head_avx2);
  return table;
}

}  // namespace kyutai::kernels::detail
