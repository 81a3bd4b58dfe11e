// Writing a file so that no reader ever sees it change: every file the project writes (weights,
// codes, audio) goes through AtomicFile. Torch-free.
//
// Why: weights are memory-mapped. Truncating a mapped file kills its readers with SIGBUS, and
// overwriting it in place silently changes the weights under running conversations. Written to a
// temporary name in the same directory, flushed to disk and renamed into place, the new file is a
// new inode: readers of the old one keep it, new readers get the new one, and a crash leaves
// either the old file or the new one, never half of one.
#pragma once

#include <cstddef>
#include <string>

namespace kyutai {

class AtomicFile {
 public:
  // Creates a temporary file beside `path` (mode 0666 less the umask). Throws Error.
  explicit AtomicFile(std::string path);
  // Removes the temporary file when commit() was not reached (an exception while writing).
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);  // buffered; throws Error
  // fsyncs the data, renames the temporary over `path` and fsyncs the directory. Throws Error.
  void commit();
  const std::string& path() const { return path_; }

 private:
  void write_all(const char* data, size_t size);
  void flush();
  std::string path_, temp_;
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace kyutai
