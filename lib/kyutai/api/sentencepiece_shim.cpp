// A C interface to sentencepiece, built as its own shared module and loaded with dlopen.
//
// Why: Debian's libsentencepiece.so.0 carries its own copy of protobuf-lite and exports those
// symbols, while libtorch loads the system libprotobuf.so.32. In one global symbol scope each
// library's static initialisers call into the other's copy and the process crashes before main.
// Loaded with dlmopen into a link-map namespace of its own, sentencepiece and its protobuf stay
// private (RTLD_DEEPBIND did so too, but AddressSanitizer refuses it). That namespace has its own
// C and C++ runtimes, so only plain C types cross this boundary, and what one side allocates the
// same side frees.
#include <sentencepiece_processor.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace {

sentencepiece::SentencePieceProcessor* sp(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

// Copies s into buf (NUL-terminated, truncated to cap) and returns its full length.
int copy_out(const std::string& s, char* buf, size_t cap) {
  if (cap > 0) {
    const size_t n = std::min(s.size(), cap - 1);
    std::memcpy(buf, s.data(), n);
    buf[n] = '\0';
  }
  return static_cast<int>(s.size());
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* kyutai_spm_load(const char* path, char* error,
                                                             size_t error_size) {
  auto* p = new sentencepiece::SentencePieceProcessor();
  const auto status = p->Load(path);
  if (!status.ok()) {
    copy_out(status.ToString(), error, error_size);
    delete p;
    return nullptr;
  }
  return p;
}

__attribute__((visibility("default"))) void kyutai_spm_free(void* handle) {
  delete sp(handle);
}

__attribute__((visibility("default"))) int kyutai_spm_size(void* handle) {
  return sp(handle)->GetPieceSize();
}

__attribute__((visibility("default"))) int kyutai_spm_piece(void* handle, int id, char* buf,
                                                            size_t cap) {
  return copy_out(sp(handle)->IdToPiece(id), buf, cap);
}

// The end-of-sentence id, -1 when the model has none.
__attribute__((visibility("default"))) int kyutai_spm_eos_id(void* handle) {
  return sp(handle)->eos_id();
}

__attribute__((visibility("default"))) int kyutai_spm_is_byte(void* handle, int id) {
  return sp(handle)->IsByte(id) ? 1 : 0;
}

// Writes up to cap ids; returns how many the text has.
__attribute__((visibility("default"))) int kyutai_spm_encode(void* handle, const char* text,
                                                             size_t length, int* ids, size_t cap) {
  std::vector<int> out;
  sp(handle)->Encode(std::string(text, length), &out);
  for (size_t i = 0; i < out.size() && i < cap; ++i) ids[i] = out[i];
  return static_cast<int>(out.size());
}

__attribute__((visibility("default"))) int kyutai_spm_decode(void* handle, const int* ids,
                                                             size_t count, char* buf, size_t cap) {
  std::string text;
  sp(handle)->Decode(std::vector<int>(ids, ids + count), &text);
  return copy_out(text, buf, cap);
}

}  // extern "C"
