#include "call/transcript.h"

namespace moshigw {

Transcript::Transcript(const std::string& path)
    : file_(std::fopen(path.c_str(), "w")),
      sources_{{this, Speaker::moshi}, {this, Speaker::caller}} {}

Transcript::~Transcript() {
  if (!file_) return;
  if (last_ >= 0) std::fputc('\n', file_);
  std::fclose(file_);
}

void Transcript::listen(GstPad* pad, Speaker speaker) {
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_text,
                    &sources_[static_cast<int>(speaker)], nullptr);
}

GstPadProbeReturn Transcript::on_text(GstPad*, GstPadProbeInfo* info, gpointer source) {
  const auto* s = static_cast<const Source*>(source);
  GstMapInfo map;
  GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  if (gst_buffer_map(buffer, &map, GST_MAP_READ)) {
    s->transcript->write(s->speaker, reinterpret_cast<const char*>(map.data), map.size);
    gst_buffer_unmap(buffer, &map);
  }
  return GST_PAD_PROBE_OK;
}

// Moshi's text comes in pieces that carry their own spaces; the caller's in words.
void Transcript::write(Speaker speaker, const char* text, size_t size) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!file_ || size == 0) return;
  const int who = static_cast<int>(speaker);
  if (who != last_) {
    if (last_ >= 0) std::fputc('\n', file_);
    std::fputs(speaker == Speaker::moshi ? "moshi:" : "caller:", file_);
    if (speaker == Speaker::moshi) std::fputc(' ', file_);
    last_ = who;
  }
  if (speaker == Speaker::caller) std::fputc(' ', file_);
  std::fwrite(text, 1, size, file_);
  std::fflush(file_);
}

}  // namespace moshigw
