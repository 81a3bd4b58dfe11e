// Shared helpers for the element tests: GStreamer set-up, golden data, elements under GstHarness
// with a bus for their error messages, and buffers of audio or codes.
#pragma once

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "kyutai/safetensors.h"

namespace gstmimi::test {

// The small model in tests/data/golden/mimi_tiny.
inline constexpr int kRate = 24000;
inline constexpr int kFrame = 48;  // samples per frame
inline constexpr int kCodebooks = 8;
inline constexpr int kCardinality = 64;
inline constexpr int kFrames = 40;  // frames of golden audio
inline constexpr GstClockTime kFrameTime = 2 * GST_MSECOND;

std::string data_path(const std::string& relative);
std::string tiny_model();
std::string source_root();

// The mimi_tiny golden tensors the element tests use (io.safetensors), codes codebook-major.
struct Golden {
  std::vector<float> audio;           // [1920]
  std::vector<float> audio_stream;    // [1920], streaming decode of codes_batch
  std::vector<int64_t> codes_stream;  // [8][40], streaming encode of audio
  std::vector<int64_t> codes_batch;   // [8][40]
  // The codes of one frame, in codebook order.
  std::vector<int64_t> frame(const std::vector<int64_t>& codes, int f) const;
};
const Golden& golden();

// A golden tensor's values, which must have `dtype`.
template <typename T>
std::vector<T> read_tensor(const kyutai::SafetensorsFile& file, const std::string& name,
                           kyutai::DType dtype) {
  const kyutai::TensorInfo* info = file.find(name);
  if (!info || info->dtype != dtype) throw std::runtime_error("golden tensor missing: " + name);
  const size_t count = (info->end - info->begin) / sizeof(T);
  std::vector<T> values(count);
  std::memcpy(values.data(), file.data(*info), count * sizeof(T));
  return values;
}

std::string enc_sink_caps(int rate = kRate, int channels = 1);
std::string dec_sink_caps(int codebooks = kCodebooks, const std::string& extra = "");

using Properties = std::map<std::string, std::string>;

// A new element with properties given as strings (as on a gst-launch line).
GstElement* make_element(const std::string& factory, const Properties& properties);

// An element under GstHarness, in PLAYING, with its own bus so errors can be read back.
class Harnessed {
 public:
  Harnessed(const std::string& factory, const Properties& properties);
  ~Harnessed();
  Harnessed(const Harnessed&) = delete;
  Harnessed& operator=(const Harnessed&) = delete;

  GstHarness* h = nullptr;
  GstElement* element = nullptr;
  GstBus* bus = nullptr;

  // Every buffer waiting on the harness's sink, in order.
  std::vector<GstBuffer*> pull_all();
  // Sends caps straight to the element's sink pad and returns whether it took them (pushing
  // a sticky event through the harness reports success even when the peer refuses it).
  bool send_caps(const std::string& caps);
  GstPad* sinkpad() const { return GST_PAD_PEER(h->srcpad); }
};

// The first error on `bus`, if any.
struct ErrorMessage {
  bool found = false;
  GQuark domain = 0;
  int code = 0;
  std::string message;
  std::string debug;
};
ErrorMessage pop_error(GstBus* bus);
ErrorMessage parse_error(GstMessage* message);

// gtest assertion: an error of the given domain and code whose message contains `text`.
::testing::AssertionResult is_error(const ErrorMessage& e, GQuark domain, int code,
                                    const std::string& text = "");

GstBuffer* audio_buffer(const float* samples, size_t count, GstClockTime pts = GST_CLOCK_TIME_NONE);
GstBuffer* codes_buffer(const std::vector<int64_t>& codes, GstClockTime pts = GST_CLOCK_TIME_NONE);
// Codes of a buffer, read as little-endian guint16.
std::vector<int64_t> buffer_codes(GstBuffer* buffer);
std::vector<float> buffer_samples(GstBuffer* buffer);
void unref_all(std::vector<GstBuffer*>& buffers);

// Sets the process's peak resident memory back to the current one (proc(5), clear_refs "5"), so
// that peak_rss_kib() then reads the peak since this call, whatever earlier tests reached.
// False where the kernel refuses.
bool reset_peak_rss();
// The process's peak resident memory (VmHWM) since it started or since reset_peak_rss(), in KiB.
long peak_rss_kib();

// The GAP events waiting on `h`'s sink, as (timestamp, duration); other events are dropped.
std::vector<std::pair<GstClockTime, GstClockTime>> pull_gaps(GstHarness* h);

// Relative L2 error ||a - b|| / ||b||, in double.
double rel_l2(const std::vector<float>& a, const std::vector<float>& b);

// The meson build directory ($BUILD_DIR, else "build").
const char* build_dir();
// `s` in single quotes, for a shell command line.
std::string quote(const std::string& s);

struct Outcome {
  int status = -1;
  std::string output;  // stdout and stderr
};

class TempDir;
// Runs a shell `command` in the source root with BUILD_DIR set; its output goes to a file in
// `dir` and comes back in the outcome.
Outcome run(const std::string& command, const TempDir& dir);

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& str() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace gstmimi::test
