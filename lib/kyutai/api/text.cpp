#include "kyutai/text.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "kyutai/error.h"
#include "kyutai/hub.h"

namespace kyutai {

namespace {

const std::string kSpaceMarker = "\xe2\x96\x81";  // U+2581, sentencepiece's word boundary
const std::string kReplacement = "\xef\xbf\xbd";  // U+FFFD

// Length of the UTF-8 sequence starting with byte c (0: not a valid lead byte).
size_t sequence_length(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return 2;
  if (c >= 0xe0 && c <= 0xef) return 3;
  if (c >= 0xf0 && c <= 0xf4) return 4;
  return 0;
}

// 1..4: a valid character of that length at s[i]; 0: invalid; -1: valid so far but cut short.
int check_sequence(const std::string& s, size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  const size_t len = sequence_length(lead);
  if (len == 0) return 0;
  for (size_t j = 1; j < len; ++j) {
    if (i + j >= s.size()) return -1;
    const auto c = static_cast<unsigned char>(s[i + j]);
    if ((c & 0xc0) != 0x80) return 0;
    // Overlong and surrogate forms.
    if (j == 1 && ((lead == 0xe0 && c < 0xa0) || (lead == 0xed && c > 0x9f) ||
                   (lead == 0xf0 && c < 0x90) || (lead == 0xf4 && c > 0x8f)))
      return 0;
  }
  return static_cast<int>(len);
}

// The sentencepiece shim's C entry points, loaded once per process.
struct Shim {
  void* (*load)(const char*, char*, size_t);
  void (*free)(void*);
  int (*size)(void*);
  int (*piece)(void*, int, char*, size_t);
  int (*is_byte)(void*, int);
  int (*eos_id)(void*);
  int (*encode)(void*, const char*, size_t, int*, size_t);
  int (*decode)(void*, const int*, size_t, char*, size_t);
};

// The installed module first: an installed library must never load code from its build
// directory (a path such as /tmp/..., which another user could fill) while its own module is
// there. The build tree's module serves the tests and uninstalled runs.
std::string shim_path() {
  if (const char* env = std::getenv("KYUTAI_SENTENCEPIECE_SHIM")) return env;
  for (const char* candidate : {KYUTAI_SPM_SHIM_INSTALL_PATH, KYUTAI_SPM_SHIM_BUILD_PATH})
    if (file_exists(candidate)) return candidate;
  return "libkyutai-sentencepiece.so";
}

const Shim& shim() {
  static Shim api{};
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string path = shim_path();
    // In a link-map namespace of its own, sentencepiece's private protobuf never meets
    // libtorch's. RTLD_DEEPBIND did the same within one namespace, but AddressSanitizer refuses
    // it, and the shim would still see the process's global symbols first.
    void* lib = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      error = std::string("cannot load the sentencepiece shim ") + path + ": " + dlerror() +
              " (set KYUTAI_SENTENCEPIECE_SHIM to its path)";
      return;
    }
    auto sym = [&](const char* name) { return dlsym(lib, name); };
    api.load = reinterpret_cast<decltype(api.load)>(sym("kyutai_spm_load"));
    api.free = reinterpret_cast<decltype(api.free)>(sym("kyutai_spm_free"));
    api.size = reinterpret_cast<decltype(api.size)>(sym("kyutai_spm_size"));
    api.piece = reinterpret_cast<decltype(api.piece)>(sym("kyutai_spm_piece"));
    api.is_byte = reinterpret_cast<decltype(api.is_byte)>(sym("kyutai_spm_is_byte"));
    api.eos_id = reinterpret_cast<decltype(api.eos_id)>(sym("kyutai_spm_eos_id"));
    api.encode = reinterpret_cast<decltype(api.encode)>(sym("kyutai_spm_encode"));
    api.decode = reinterpret_cast<decltype(api.decode)>(sym("kyutai_spm_decode"));
    if (!api.load || !api.free || !api.size || !api.piece || !api.is_byte || !api.eos_id ||
        !api.encode || !api.decode) {
      api = Shim{};
      error = path + ": not the kyutai sentencepiece shim";
    }
  });
  if (!api.load) throw Error(error);
  return api;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

}  // namespace

size_t complete_utf8_prefix(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const int len = check_sequence(s, i);
    if (len < 0) break;
    i += len == 0 ? 1 : static_cast<size_t>(len);
  }
  return i;
}

std::string sanitize_utf8(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const int len = check_sequence(s, i);
    if (len > 0) {
      out.append(s, i, static_cast<size_t>(len));
      i += static_cast<size_t>(len);
    } else {
      out += kReplacement;
      ++i;
    }
  }
  return out;
}

std::shared_ptr<const TextTokenizer> TextTokenizer::load(const std::string& path) {
  if (!file_exists(path)) throw NotFoundError(path + ": text tokenizer not found");
  const Shim& api = shim();
  char error[512] = {0};
  void* handle = api.load(path.c_str(), error, sizeof(error));
  if (!handle) throw FormatError(path + ": not a sentencepiece model (" + error + ")");
  std::shared_ptr<TextTokenizer> t(new TextTokenizer());
  t->handle_ = handle;
  t->path_ = path;
  const int size = api.size(handle);
  std::vector<char> buf(256);
  for (int id = 0; id < size; ++id) {
    int n = api.piece(handle, id, buf.data(), buf.size());
    if (n >= static_cast<int>(buf.size())) {
      buf.resize(static_cast<size_t>(n) + 1);
      n = api.piece(handle, id, buf.data(), buf.size());
    }
    t->pieces_.emplace_back(buf.data(), static_cast<size_t>(n));
    t->bytes_.push_back(api.is_byte(handle, id) != 0);
  }
  t->eos_id_ = api.eos_id(handle);
  return t;
}

TextTokenizer::~TextTokenizer() {
  if (handle_) shim().free(handle_);
}

const std::string& TextTokenizer::piece(int id) const {
  static const std::string empty;
  return id >= 0 && id < vocab_size() ? pieces_[static_cast<size_t>(id)] : empty;
}

bool TextTokenizer::is_byte(int id) const {
  return id >= 0 && id < vocab_size() && bytes_[static_cast<size_t>(id)];
}

std::vector<int> TextTokenizer::encode(const std::string& text) const {
  std::vector<int> ids(text.size() + 16);
  const int n = shim().encode(handle_, text.data(), text.size(), ids.data(), ids.size());
  if (n > static_cast<int>(ids.size())) {
    ids.resize(static_cast<size_t>(n));
    shim().encode(handle_, text.data(), text.size(), ids.data(), ids.size());
  }
  ids.resize(static_cast<size_t>(n));
  return ids;
}

std::string TextTokenizer::decode(const std::vector<int>& ids) const {
  std::vector<char> buf(ids.size() * 16 + 64);
  int n = shim().decode(handle_, ids.data(), ids.size(), buf.data(), buf.size());
  if (n >= static_cast<int>(buf.size())) {
    buf.resize(static_cast<size_t>(n) + 1);
    n = shim().decode(handle_, ids.data(), ids.size(), buf.data(), buf.size());
  }
  return std::string(buf.data(), static_cast<size_t>(n));
}

TextStream::TextStream(std::shared_ptr<const TextTokenizer> tokenizer, std::vector<int> skip)
    : tokenizer_(std::move(tokenizer)), skip_(std::move(skip)) {}

std::string TextStream::push(int token) {
  if (std::find(skip_.begin(), skip_.end(), token) != skip_.end()) return {};
  return push_piece(tokenizer_->piece(token), tokenizer_->is_byte(token));
}

std::string TextStream::push_piece(const std::string& piece, bool is_byte) {
  if (is_byte && piece.size() == 6 && piece.rfind("<0x", 0) == 0) {
    pending_.push_back(static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  } else {
    pending_ += replace_all(piece, kSpaceMarker, " ");
  }
  const size_t done = complete_utf8_prefix(pending_);
  std::string out = sanitize_utf8(pending_.substr(0, done));
  pending_.erase(0, done);
  return out;
}

std::string TextStream::flush() {
  std::string out = sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace kyutai
