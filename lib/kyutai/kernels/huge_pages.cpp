#include "kyutai/kernels/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <new>

namespace kyutai::kernels {

void* allocate_streamed(size_t bytes) {
  const size_t align = bytes >= kHugePage ? kHugePage : 64;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* mem = std::aligned_alloc(align, rounded == 0 ? align : rounded);
  if (mem == nullptr) throw std::bad_alloc();
  if (align == kHugePage) advise_huge_pages(mem, rounded);
  return mem;
}

void advise_huge_pages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (begin + kHugePage - 1) / kHugePage * kHugePage;
  const uintptr_t last = (begin + bytes) / kHugePage * kHugePage;
  // Advice only: where the system gives no huge pages, the memory works as it is.
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace kyutai::kernels
