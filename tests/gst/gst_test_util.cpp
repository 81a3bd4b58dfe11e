#include <sys/resource.h>

#include "gst_test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kyutai/safetensors.h"

namespace gstmimi::test {

namespace {

// GStreamer is initialised once per test program, before the first test.
class GstEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { gst_init(nullptr, nullptr); }
};

[[maybe_unused]] ::testing::Environment* const gst_environment =
    ::testing::AddGlobalTestEnvironment(new GstEnvironment);

Golden load_golden() {
  const auto file = kyutai::SafetensorsFile::open(data_path("golden/mimi_tiny/io.safetensors"));
  Golden g;
  g.audio = read_tensor<float>(*file, "audio", kyutai::DType::F32);
  g.audio_stream = read_tensor<float>(*file, "audio_stream", kyutai::DType::F32);
  g.codes_stream = read_tensor<int64_t>(*file, "codes_stream", kyutai::DType::I64);
  g.codes_batch = read_tensor<int64_t>(*file, "codes_batch", kyutai::DType::I64);
  return g;
}

}  // namespace

std::string data_path(const std::string& relative) {
  return std::string(KYUTAI_TEST_DATA) + "/" + relative;
}

std::string tiny_model() {
  return data_path("golden/mimi_tiny");
}

std::string source_root() {
  return KYUTAI_SOURCE_ROOT;
}

std::vector<int64_t> Golden::frame(const std::vector<int64_t>& codes, int f) const {
  std::vector<int64_t> out(kCodebooks);
  for (int k = 0; k < kCodebooks; ++k) out[k] = codes[k * kFrames + f];
  return out;
}

const Golden& golden() {
  static const Golden g = load_golden();
  return g;
}

std::string enc_sink_caps(int rate, int channels) {
  return "audio/x-raw,format=F32LE,layout=interleaved,rate=" + std::to_string(rate) +
         ",channels=" + std::to_string(channels);
}

std::string dec_sink_caps(int codebooks, const std::string& extra) {
  return "audio/x-mimi,rate=24000,channels=1,frame-size=48,cardinality=64,codebooks=" +
         std::to_string(codebooks) + extra;
}

GstElement* make_element(const std::string& factory, const Properties& properties) {
  GstElement* element = gst_element_factory_make(factory.c_str(), nullptr);
  if (!element) throw std::runtime_error("no element " + factory + ": is GST_PLUGIN_PATH set?");
  for (const auto& [name, value] : properties)
    gst_util_set_object_arg(G_OBJECT(element), name.c_str(), value.c_str());
  return element;
}

Harnessed::Harnessed(const std::string& factory, const Properties& properties) {
  element = GST_ELEMENT(gst_object_ref_sink(make_element(factory, properties)));
  bus = gst_bus_new();
  gst_element_set_bus(element, bus);
  h = gst_harness_new_with_element(element, "sink", "src");
}

Harnessed::~Harnessed() {
  gst_harness_teardown(h);
  gst_element_set_bus(element, nullptr);
  gst_object_unref(bus);
  gst_object_unref(element);
}

std::vector<GstBuffer*> Harnessed::pull_all() {
  std::vector<GstBuffer*> buffers;
  while (gst_harness_buffers_in_queue(h) > 0) buffers.push_back(gst_harness_pull(h));
  return buffers;
}

bool Harnessed::send_caps(const std::string& caps) {
  return gst_pad_send_event(sinkpad(), gst_event_new_caps(gst_caps_from_string(caps.c_str())));
}

ErrorMessage pop_error(GstBus* bus) {
  GstMessage* message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  if (!message) return {};
  ErrorMessage e = parse_error(message);
  gst_message_unref(message);
  return e;
}

ErrorMessage parse_error(GstMessage* message) {
  ErrorMessage e;
  GError* error = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(message, &error, &debug);
  e.found = true;
  e.domain = error->domain;
  e.code = error->code;
  e.message = error->message ? error->message : "";
  e.debug = debug ? debug : "";
  g_error_free(error);
  g_free(debug);
  return e;
}

::testing::AssertionResult is_error(const ErrorMessage& e, GQuark domain, int code,
                                    const std::string& text) {
  if (!e.found) return ::testing::AssertionFailure() << "no error message was posted";
  if (e.domain != domain || e.code != code)
    return ::testing::AssertionFailure()
           << "error " << g_quark_to_string(e.domain) << "/" << e.code << " instead of "
           << g_quark_to_string(domain) << "/" << code << ": " << e.message;
  if (e.message.find(text) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message \"" << e.message << "\" does not contain \"" << text << "\"";
  return ::testing::AssertionSuccess() << e.message;
}

GstBuffer* audio_buffer(const float* samples, size_t count, GstClockTime pts) {
  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, count * sizeof(float), nullptr);
  gst_buffer_fill(buffer, 0, samples, count * sizeof(float));
  GST_BUFFER_PTS(buffer) = pts;
  if (GST_CLOCK_TIME_IS_VALID(pts))
    GST_BUFFER_DURATION(buffer) = gst_util_uint64_scale_int(count, GST_SECOND, kRate);
  return buffer;
}

GstBuffer* codes_buffer(const std::vector<int64_t>& codes, GstClockTime pts) {
  std::vector<guint8> bytes(codes.size() * 2);
  for (size_t k = 0; k < codes.size(); ++k)
    GST_WRITE_UINT16_LE(bytes.data() + 2 * k, static_cast<guint16>(codes[k]));
  GstBuffer* buffer = gst_buffer_new_memdup(bytes.data(), bytes.size());
  GST_BUFFER_PTS(buffer) = pts;
  if (GST_CLOCK_TIME_IS_VALID(pts)) GST_BUFFER_DURATION(buffer) = kFrameTime;
  return buffer;
}

std::vector<int64_t> buffer_codes(GstBuffer* buffer) {
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_READ);
  std::vector<int64_t> codes(map.size / 2);
  for (size_t k = 0; k < codes.size(); ++k) codes[k] = GST_READ_UINT16_LE(map.data + 2 * k);
  gst_buffer_unmap(buffer, &map);
  return codes;
}

std::vector<float> buffer_samples(GstBuffer* buffer) {
  std::vector<float> samples(gst_buffer_get_size(buffer) / sizeof(float));
  gst_buffer_extract(buffer, 0, samples.data(), samples.size() * sizeof(float));
  return samples;
}

void unref_all(std::vector<GstBuffer*>& buffers) {
  for (GstBuffer* b : buffers) gst_buffer_unref(b);
  buffers.clear();
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double d = static_cast<double>(i < a.size() ? a[i] : 0.0f) - b[i];
    diff += d * d;
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

bool reset_peak_rss() {
  std::ofstream refs("/proc/self/clear_refs");
  refs << "5" << std::flush;
  return static_cast<bool>(refs);
}

long peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

std::vector<std::pair<GstClockTime, GstClockTime>> pull_gaps(GstHarness* h) {
  std::vector<std::pair<GstClockTime, GstClockTime>> gaps;
  while (GstEvent* e = gst_harness_try_pull_event(h)) {
    GstClockTime ts, duration;
    if (GST_EVENT_TYPE(e) == GST_EVENT_GAP) {
      gst_event_parse_gap(e, &ts, &duration);
      gaps.emplace_back(ts, duration);
    }
    gst_event_unref(e);
  }
  return gaps;
}

const char* build_dir() {
  const char* dir = std::getenv("BUILD_DIR");
  return dir ? dir : "build";
}

std::string quote(const std::string& s) {
  return "'" + s + "'";
}

Outcome run(const std::string& command, const TempDir& dir) {
  const std::string log = dir.path("output.txt");
  const std::string line = "cd " + quote(source_root()) + " && BUILD_DIR=" + quote(build_dir()) +
                           " " + command + " > " + quote(log) + " 2>&1";
  Outcome r;
  const int raw = std::system(line.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  std::ifstream in(log);
  std::stringstream s;
  s << in.rdbuf();
  r.output = s.str();
  return r;
}

TempDir::TempDir() {
  static int counter = 0;
  dir_ = ::testing::TempDir() + "gst_mimi_" + std::to_string(getpid()) + "_" +
         std::to_string(counter++);
  std::filesystem::create_directories(dir_);
}

TempDir::~TempDir() {
  std::filesystem::remove_all(dir_);
}

}  // namespace gstmimi::test
