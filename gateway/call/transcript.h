// A call's transcript with the caller's words beside Moshi's (stt-model): a line per turn,
// "moshi: <its text>" or "caller: <the words kyutaistt heard>", in the order the texts arrive.
// Both text branches write from their streaming threads (pad probes), under one mutex.
#pragma once

#include <gst/gst.h>

#include <cstdio>
#include <mutex>
#include <string>

namespace moshigw {

class Transcript {
 public:
  enum class Speaker { moshi, caller };

  // Creates (truncates) `path`; ok() says whether it could.
  explicit Transcript(const std::string& path);
  ~Transcript();  // ends the last line; the pipeline must be stopped first
  Transcript(const Transcript&) = delete;
  Transcript& operator=(const Transcript&) = delete;

  bool ok() const { return file_ != nullptr; }
  // Writes every buffer that passes `pad` as `speaker`'s text.
  void listen(GstPad* pad, Speaker speaker);

 private:
  struct Source {
    Transcript* transcript;
    Speaker speaker;
  };
  static GstPadProbeReturn on_text(GstPad*, GstPadProbeInfo* info, gpointer source);
  void write(Speaker speaker, const char* text, size_t size);

  std::FILE* file_ = nullptr;
  Source sources_[2];
  std::mutex mutex_;  // guards the file and who spoke last
  int last_ = -1;     // the Speaker of the current line, -1 before the first
};

}  // namespace moshigw
