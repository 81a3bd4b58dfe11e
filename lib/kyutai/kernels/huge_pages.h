// Memory that a step streams through (packed weights, long KV caches, the benchmarks' floor
// buffer) in transparent huge pages where the system gives them: with 4 KB pages every 4 KB
// of a gigabyte stream is a TLB miss, and in a virtual machine a two-level page walk.
#pragma once

#include <cstddef>
#include <cstdlib>

namespace kyutai::kernels {

constexpr size_t kHugePage = size_t(2) << 20;

// `bytes` of memory (free it with std::free), 64-byte aligned; from 2 MB on, aligned to 2 MB
// and advised as huge pages. Throws std::bad_alloc.
void* allocate_streamed(size_t bytes);

// Advises as huge pages the whole 2 MB pages inside [p, p + bytes) (memory allocated
// elsewhere, a tensor's for example); a range holding none is left as it is.
void advise_huge_pages(void* p, size_t bytes);

// An allocator for standard containers over allocate_streamed.
template <class T>
struct StreamedAllocator {
  using value_type = T;
  StreamedAllocator() = default;
  template <class U>
  StreamedAllocator(const StreamedAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_streamed(n * sizeof(T))); }
  void deallocate(T* p, size_t) { std::free(p); }
  bool operator==(const StreamedAllocator&) const { return true; }
  bool operator!=(const StreamedAllocator&) const { return false; }
};

}  // namespace kyutai::kernels
