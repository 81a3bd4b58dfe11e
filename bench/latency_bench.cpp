// moshibin latency benchmark: a live conversation through the element as a capture card would
// feed it, timed at moshibin's pads.
//   moshibin-latency [--model DIR] [--seconds N] [--warmup N] [--threads N] [--weights W]
//                    [--device D] [--input WAV] [--trace]
// A thread pushes 20 ms buffers of the input (tests/data/speechlike.wav, looped) into
//   appsrc is-live=true format=time ! moshibin ! fakesink sync=false
// each one when the wall clock reaches its end, as a capture source delivers a period, and notes
// when it offered it. Pad probes note the monotonic time each buffer (by PTS) passes moshibin's
// sink and src pads, and the src pads of its mimienc, moshilm and mimidec, which split the delay
// into stages.
//
// Which input frame an output buffer answers: moshilm stamps the frame it pushes after stepping
// on input frame k with frame k's PTS (and mimidec keeps it), so an output buffer answers the
// input frame of the same PTS: the frame whose first sample is the input buffer of that PTS,
// and whose last sample is in the input buffer at PTS + frame - 20 ms. (Moshi's semantic code in
// that output was sampled one step earlier: the acoustic delay. The output that first depends on
// frame k in every codebook is therefore this one, and the one whose semantic code does is the
// next, one frame later; Kyutai's "160 ms" counts that frame.)
//
// A sample "enters" moshibin when it is offered to it: moshibin has no queue at its input, so
// its whole work runs in the thread that feeds it, and a buffer offered while a frame is being
// processed waits upstream (in appsrc here, in a capture source's ring buffer in real life)
// until the thread is free. The delays therefore count from the offer; the same delays counted
// from the buffer's passage through moshibin's sink pad are printed beside them.
//
// Printed: the delays from the first and from the last sample of the input frame to its answer
// leaving moshibin (median, p90, max over the frames after the warm-up), each stage's, moshilm's
// median step time (its `stats`), and the latency moshibin reports (a LATENCY query on its src
// pad, less what appsrc reports upstream of it). The last line:
//   latency first_sample_ms=<median> last_sample_ms=<median> step_ms=<median step>
//      reported_ms=<moshibin's min> bound_ms=<frame + step + 20> within=<yes|no> threads=<n>
//      model=<dir> entered_ms=<median first-sample delay from the sink pad>
//      max_first_sample_ms=<max> covered=<yes|no: reported >= max first-sample delay>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "wav.h"

namespace {

constexpr int kChunkMs = 20;  // one capture period, as alsasrc's default latency-time gives

struct Options {
  std::string model = KYUTAI_SOURCE_ROOT "/models/moshi-tiny";
  std::string input = KYUTAI_SOURCE_ROOT "/tests/data/speechlike.wav";
  std::string weights;  // empty: the element's default
  std::string device = "cpu";
  int seconds = 20;
  int warmup = 3;
  int threads = 0;  // the element's default: all cores
  bool trace = false;  // a line per output frame, warm-up included
};

void usage() {
  std::fprintf(stderr,
               "usage: moshibin-latency [--model DIR] [--seconds N] [--warmup N] [--threads N]\n"
               "                        [--weights W] [--device D] [--input WAV] [--trace]\n");
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--trace") {
      o.trace = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (a == "--model")
      o.model = v;
    else if (a == "--input")
      o.input = v;
    else if (a == "--weights")
      o.weights = v;
    else if (a == "--device")
      o.device = v;
    else if (a == "--seconds")
      o.seconds = std::atoi(v.c_str());
    else if (a == "--warmup")
      o.warmup = std::atoi(v.c_str());
    else if (a == "--threads")
      o.threads = std::atoi(v.c_str());
    else
      return false;
  }
  return o.seconds > 0 && o.warmup >= 0 && o.threads >= 0;
}

// ---------------------------------------------------------------------------------------------
// Arrival times at one pad, by PTS: the first time a buffer of that PTS passed.

class PadTimes {
 public:
  void note(GstClockTime pts, GstClockTime duration, gint64 now_us) {
    std::lock_guard<std::mutex> lock(mutex_);
    times_.emplace(pts, now_us);
    if (GST_CLOCK_TIME_IS_VALID(duration)) duration_ = duration;
  }
  // Within half a millisecond: an encoder counting samples may round the PTS by a nanosecond.
  std::optional<gint64> at(GstClockTime pts) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = times_.lower_bound(pts > GST_MSECOND / 2 ? pts - GST_MSECOND / 2 : 0);
    if (it == times_.end() || it->first > pts + GST_MSECOND / 2) return std::nullopt;
    return it->second;
  }
  std::vector<GstClockTime> stamps() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<GstClockTime> out;
    for (const auto& [pts, time] : times_) out.push_back(pts);
    return out;
  }
  GstClockTime duration() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return duration_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<GstClockTime, gint64> times_;
  GstClockTime duration_ = GST_CLOCK_TIME_NONE;
};

GstPadProbeReturn note_buffer(GstPad*, GstPadProbeInfo* info, gpointer data) {
  const gint64 now = g_get_monotonic_time();
  GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  if (GST_BUFFER_PTS_IS_VALID(buffer))
    static_cast<PadTimes*>(data)->note(GST_BUFFER_PTS(buffer), GST_BUFFER_DURATION(buffer), now);
  return GST_PAD_PROBE_OK;
}

// The times noted: when the feeder offered each buffer to appsrc, then the pads, moshibin's own
// and its children's outputs, in the order a frame crosses them.
struct Probes {
  PadTimes offered, in, encoded, stepped, decoded, out;
};

bool probe(GstElement* element, const char* pad_name, PadTimes* times) {
  g_autoptr(GstPad) pad = gst_element_get_static_pad(element, pad_name);
  if (!pad) return false;
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, note_buffer, times, nullptr);
  return true;
}

bool probe_child(GstElement* bin, const char* child_name, PadTimes* times) {
  g_autoptr(GstElement) child = gst_bin_get_by_name(GST_BIN(bin), child_name);
  return child && probe(child, "src", times);
}

bool add_probes(GstElement* moshibin, Probes& p) {
  return probe(moshibin, "sink", &p.in) && probe(moshibin, "src", &p.out) &&
         probe_child(moshibin, "mimienc", &p.encoded) &&
         probe_child(moshibin, "moshilm", &p.stepped) &&
         probe_child(moshibin, "mimidec", &p.decoded);
}

// ---------------------------------------------------------------------------------------------
// The live input

struct Input {
  std::vector<float> pcm;  // mono
  int rate = 0;
};

Input read_input(const std::string& path) {
  const kyutai::tools::Wav wav = kyutai::tools::read_wav(path);
  return Input{kyutai::tools::to_mono(wav), wav.sample_rate};
}

// Pushes `total` chunks of the looped input, each when the wall clock reaches its end, then
// EOS, noting when each was offered. Stops early when `stop` is set.
void feed(GstAppSrc* src, const Input& input, int total, const std::atomic<bool>& stop,
          PadTimes* offered) {
  const size_t chunk = static_cast<size_t>(input.rate) * kChunkMs / 1000;
  const auto start = std::chrono::steady_clock::now();
  size_t at = 0;
  for (int i = 0; i < total && !stop; ++i) {
    std::this_thread::sleep_until(start + std::chrono::milliseconds(kChunkMs * (i + 1)));
    GstBuffer* buffer = gst_buffer_new_allocate(nullptr, chunk * sizeof(float), nullptr);
    GstMapInfo map;
    gst_buffer_map(buffer, &map, GST_MAP_WRITE);
    auto* out = reinterpret_cast<float*>(map.data);
    for (size_t s = 0; s < chunk; ++s, at = (at + 1) % input.pcm.size()) out[s] = input.pcm[at];
    gst_buffer_unmap(buffer, &map);
    GST_BUFFER_PTS(buffer) = static_cast<GstClockTime>(i) * kChunkMs * GST_MSECOND;
    GST_BUFFER_DURATION(buffer) = kChunkMs * GST_MSECOND;
    offered->note(GST_BUFFER_PTS(buffer), GST_BUFFER_DURATION(buffer), g_get_monotonic_time());
    gst_app_src_push_buffer(src, buffer);
  }
  gst_app_src_end_of_stream(src);
}

// ---------------------------------------------------------------------------------------------
// The pipeline

std::string describe(const Options& o, int rate) {
  std::string d = "appsrc name=src is-live=true format=time max-bytes=0 caps=audio/x-raw,"
                  "format=F32LE,layout=interleaved,channels=1,rate=" +
                  std::to_string(rate) +
                  " min-latency=" + std::to_string(kChunkMs * GST_MSECOND) +
                  " max-latency=" + std::to_string(kChunkMs * GST_MSECOND) +
                  " ! moshibin name=m model=\"" + o.model + "\" device=" + o.device +
                  " threads=" + std::to_string(o.threads);
  if (!o.weights.empty()) d += " weights=" + o.weights;
  return d + " ! fakesink sync=false";
}

struct Reported {
  bool ok = false;
  GstClockTime min = 0, max = GST_CLOCK_TIME_NONE;
};

Reported query_latency(GstPad* pad, bool peer) {
  g_autoptr(GstQuery) query = gst_query_new_latency();
  Reported r;
  r.ok = peer ? gst_pad_peer_query(pad, query) : gst_pad_query(pad, query);
  gboolean live = FALSE;
  if (r.ok) gst_query_parse_latency(query, &live, &r.min, &r.max);
  return r;
}

// What moshibin adds: the latency on its src pad less what its input reports.
Reported moshibin_latency(GstElement* moshibin) {
  g_autoptr(GstPad) sink = gst_element_get_static_pad(moshibin, "sink");
  g_autoptr(GstPad) src = gst_element_get_static_pad(moshibin, "src");
  const Reported upstream = query_latency(sink, true);
  Reported total = query_latency(src, false);
  total.ok = total.ok && upstream.ok;
  total.min -= upstream.min;
  if (GST_CLOCK_TIME_IS_VALID(total.max) && GST_CLOCK_TIME_IS_VALID(upstream.max))
    total.max -= upstream.max;
  return total;
}

// Waits for EOS; returns the error's text, or "timeout", or empty.
std::string wait_eos(GstElement* pipeline, GstClockTime timeout) {
  g_autoptr(GstBus) bus = gst_element_get_bus(pipeline);
  g_autoptr(GstMessage) message = gst_bus_timed_pop_filtered(
      bus, timeout, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  if (!message) return "timeout";
  if (GST_MESSAGE_TYPE(message) != GST_MESSAGE_ERROR) return "";
  g_autoptr(GError) error = nullptr;
  g_autofree gchar* debug = nullptr;
  gst_message_parse_error(message, &error, &debug);
  return std::string(error->message) + " (" + (debug ? debug : "") + ")";
}

double median_step_ms(GstElement* moshibin) {
  GstStructure* stats = nullptr;
  g_object_get(moshibin, "stats", &stats, nullptr);
  double ms = NAN;
  if (stats) gst_structure_get_double(stats, "median-step-ms", &ms);
  if (stats) gst_structure_free(stats);
  return ms;
}

// ---------------------------------------------------------------------------------------------
// Figures

struct Spread {
  double median = NAN, p90 = NAN, max = NAN;
};

Spread spread(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const size_t p90 = static_cast<size_t>(std::ceil(0.9 * v.size())) - 1;
  return Spread{v[v.size() / 2], v[p90], v.back()};
}

// Per answered frame, in ms: the delays from the frame's first and last samples, counted from
// when they were offered (the capture) and from when they entered moshibin, and the stages.
struct Delays {
  std::vector<double> first, last, entered_first, entered_last;
  std::vector<double> held, encode, step, decode, queue;
};

// The times of one answered frame: its first and last input buffers, then the pads in order.
struct FrameTimes {
  std::optional<gint64> offered_first, offered_last, first, last, enc, lm, dec, out;
  bool complete() const {
    return offered_first && offered_last && first && last && enc && lm && dec && out;
  }
};

FrameTimes frame_times(const Probes& p, GstClockTime pts, GstClockTime last_chunk) {
  return FrameTimes{p.offered.at(pts), p.offered.at(pts + last_chunk), p.in.at(pts),
                    p.in.at(pts + last_chunk), p.encoded.at(pts), p.stepped.at(pts),
                    p.decoded.at(pts), p.out.at(pts)};
}

void trace_frame(GstClockTime pts, const FrameTimes& t) {
  const auto ms = [](const std::optional<gint64>& a, const std::optional<gint64>& b) {
    return (*b - *a) / 1000.0;
  };
  std::printf("frame %8.0f ms: first %7.1f held %7.1f encode %5.1f step %5.1f decode %5.1f\n",
              static_cast<double>(pts) / GST_MSECOND, ms(t.offered_first, t.out),
              ms(t.offered_last, t.last), ms(t.last, t.enc), ms(t.enc, t.lm), ms(t.lm, t.dec));
}

Delays delays(const Probes& p, GstClockTime frame, GstClockTime warmup, bool trace) {
  Delays d;
  const GstClockTime last_chunk = frame - kChunkMs * GST_MSECOND;
  const auto ms = [](const std::optional<gint64>& a, const std::optional<gint64>& b) {
    return (*b - *a) / 1000.0;
  };
  for (GstClockTime pts : p.out.stamps()) {
    const FrameTimes t = frame_times(p, pts, last_chunk);
    if (!t.complete()) continue;
    if (trace) trace_frame(pts, t);
    if (pts < warmup) continue;
    d.first.push_back(ms(t.offered_first, t.out));
    d.last.push_back(ms(t.offered_last, t.out));
    d.entered_first.push_back(ms(t.first, t.out));
    d.entered_last.push_back(ms(t.last, t.out));
    d.held.push_back(ms(t.offered_last, t.last));
    d.encode.push_back(ms(t.last, t.enc));
    d.step.push_back(ms(t.enc, t.lm));
    d.decode.push_back(ms(t.lm, t.dec));
    d.queue.push_back(ms(t.dec, t.out));
  }
  return d;
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string one, five, fifteen;
  f >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

void print_spread(const char* what, const std::vector<double>& v) {
  const Spread s = spread(v);
  std::printf("%-48s median %7.1f  p90 %7.1f  max %7.1f ms\n", what, s.median, s.p90, s.max);
}

struct Result {
  Delays d;
  double frame_ms = NAN, step_ms = NAN;
  Reported reported;
};

void report(const Options& o, const Result& r, const std::string& load) {
  std::printf("model %s, weights %s, threads %d, load average before %s; %zu frames timed\n",
              o.model.c_str(), o.weights.empty() ? "default" : o.weights.c_str(), o.threads,
              load.c_str(), r.d.first.size());
  print_spread("first sample offered -> answer out", r.d.first);
  print_spread("last sample offered -> answer out", r.d.last);
  print_spread("first sample entered moshibin -> answer out", r.d.entered_first);
  print_spread("last sample entered moshibin -> answer out", r.d.entered_last);
  print_spread("  last sample offered -> entered (held)", r.d.held);
  print_spread("  entered -> mimienc out (encode)", r.d.encode);
  print_spread("  mimienc out -> moshilm out (step)", r.d.step);
  print_spread("  moshilm out -> mimidec out (decode)", r.d.decode);
  print_spread("  mimidec out -> moshibin out (queue)", r.d.queue);
  const double reported_ms = static_cast<double>(r.reported.min) / GST_MSECOND;
  const double reported_max_ms = GST_CLOCK_TIME_IS_VALID(r.reported.max)
                                     ? static_cast<double>(r.reported.max) / GST_MSECOND
                                     : -1;
  std::printf("reported by moshibin: min %.1f ms, max %.1f ms (-1: none); step median %.1f ms\n",
              reported_ms, reported_max_ms, r.step_ms);
  const Spread first = spread(r.d.first), last = spread(r.d.last);
  const double bound = r.frame_ms + r.step_ms + kChunkMs;
  std::printf(
      "latency first_sample_ms=%.1f last_sample_ms=%.1f step_ms=%.1f reported_ms=%.1f "
      "bound_ms=%.1f within=%s threads=%d model=%s entered_ms=%.1f max_first_sample_ms=%.1f "
      "covered=%s\n",
      first.median, last.median, r.step_ms, reported_ms, bound, first.median <= bound ? "yes" : "no",
      o.threads, o.model.c_str(), spread(r.d.entered_first).median, first.max,
      reported_ms >= first.max ? "yes" : "no");
}

// ---------------------------------------------------------------------------------------------
// The run

// Plays the pipeline for the warm-up and the timed seconds, then drains it. Returns false
// after printing why.
bool play(GstElement* pipeline, const Options& o, const Input& input, Result& r) {
  g_autoptr(GstElement) src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  g_autoptr(GstElement) moshibin = gst_bin_get_by_name(GST_BIN(pipeline), "m");
  Probes probes;
  if (!add_probes(moshibin, probes)) return std::fputs("moshibin-latency: no pads\n", stderr), false;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    std::fprintf(stderr, "moshibin-latency: the pipeline does not start: %s\n",
                 wait_eos(pipeline, 0).c_str());
    return false;
  }
  std::atomic<bool> stop{false};
  const int chunks = (o.warmup + o.seconds) * 1000 / kChunkMs;
  std::thread feeder(feed, GST_APP_SRC(src), std::cref(input), chunks, std::cref(stop),
                     &probes.offered);
  // The query runs once the caps are known: moshilm publishes its frame with them.
  std::this_thread::sleep_for(std::chrono::seconds(std::max(o.warmup, 1)));
  r.reported = moshibin_latency(moshibin);
  const std::string error = wait_eos(pipeline, (o.warmup + o.seconds + 120) * GST_SECOND);
  stop = true;
  feeder.join();
  r.step_ms = median_step_ms(moshibin);
  const GstClockTime frame = probes.out.duration();
  gst_element_set_state(pipeline, GST_STATE_NULL);
  if (!error.empty()) return std::fprintf(stderr, "moshibin-latency: %s\n", error.c_str()), false;
  if (!GST_CLOCK_TIME_IS_VALID(frame) || !r.reported.ok)
    return std::fputs("moshibin-latency: no output or no latency answer\n", stderr), false;
  r.frame_ms = static_cast<double>(frame) / GST_MSECOND;
  r.d = delays(probes, frame, static_cast<GstClockTime>(o.warmup) * GST_SECOND, o.trace);
  return !r.d.first.empty();
}

// The plugins of this build tree come first, with a registry of their own, unless the caller
// set them.
void use_build_tree_plugins() {
  setenv("GST_PLUGIN_PATH", KYUTAI_BUILD_ROOT "/gst/mimi:" KYUTAI_BUILD_ROOT "/gst/moshi", 0);
  setenv("GST_REGISTRY", KYUTAI_BUILD_ROOT "/bench/latency-registry.bin", 0);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return usage(), 2;
  use_build_tree_plugins();
  gst_init(nullptr, nullptr);
  const std::string load = load_average();
  Input input;
  try {
    input = read_input(o.input);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moshibin-latency: %s\n", e.what());
    return 1;
  }
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(describe(o, input.rate).c_str(), &error);
  if (!pipeline || error) {
    std::fprintf(stderr, "moshibin-latency: %s\n", error ? error->message : "no pipeline");
    return 1;
  }
  Result r;
  const bool ok = play(pipeline, o, input, r);
  gst_element_set_state(pipeline, GST_STATE_NULL);  // also after a failed start
  gst_object_unref(pipeline);
  if (!ok) return 1;
  report(o, r, load);
  return 0;
}
