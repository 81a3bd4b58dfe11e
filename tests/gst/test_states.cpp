// State changes of the elements: models that are missing or invalid, bad settings, PROGRESS
// messages while a model loads, and NULL <-> READY <-> PAUSED cycles that must leak nothing (run
// with GST_TRACERS=leaks).
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "gst_test_util.h"

namespace gstmimi::test {
namespace {

// Sets an environment variable for the lifetime of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = g_getenv(name)) old_ = old, had_ = true;
    g_setenv(name, value.c_str(), TRUE);
  }
  ~ScopedEnv() {
    if (had_)
      g_setenv(name_, old_.c_str(), TRUE);
    else
      g_unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

struct Progress {
  GstProgressType type;
  std::string code, text;
  int percent = -1;
};

struct StartResult {
  GstStateChangeReturn change;
  ErrorMessage error;              // the first one
  std::vector<Progress> progress;  // in order
};

Progress parse_progress(GstMessage* message) {
  Progress p;
  g_autofree gchar* code = nullptr;
  g_autofree gchar* text = nullptr;
  gst_message_parse_progress(message, &p.type, &code, &text);
  p.code = code;
  p.text = text;
  gst_structure_get_int(gst_message_get_structure(message), "percent", &p.percent);
  return p;
}

// Takes a new element to PAUSED and back to NULL; returns how going to PAUSED went.
StartResult start(const std::string& factory, const Properties& properties) {
  GstElement* element = GST_ELEMENT(gst_object_ref_sink(make_element(factory, properties)));
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(element, bus);
  StartResult result;
  result.change = gst_element_set_state(element, GST_STATE_PAUSED);
  while (GstMessage* message = gst_bus_pop(bus)) {
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_PROGRESS)
      result.progress.push_back(parse_progress(message));
    else if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR && !result.error.found)
      result.error = parse_error(message);
    gst_message_unref(message);
  }
  EXPECT_EQ(gst_element_set_state(element, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  gst_element_set_bus(element, nullptr);
  gst_object_unref(bus);
  gst_object_unref(element);
  return result;
}

class ModelErrors : public ::testing::TestWithParam<const char*> {
 protected:
  // Expects READY->PAUSED to fail with the given error.
  void expect_failure(const Properties& properties, GQuark domain, int code,
                      const std::string& text) {
    const StartResult r = start(GetParam(), properties);
    EXPECT_EQ(r.change, GST_STATE_CHANGE_FAILURE);
    EXPECT_TRUE(is_error(r.error, domain, code, text));
  }
  TempDir dir_;
};

TEST_P(ModelErrors, AMissingFileIsNotFound) {
  const std::string path = dir_.path("absent.safetensors");
  expect_failure({{"model", path}}, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND, path);
}

// The library's errors go through one helper in gst/common, but the error names the element's
// code that called it.
TEST_P(ModelErrors, AnErrorNamesTheCallersSourceFile) {
  const StartResult r = start(GetParam(), {{"model", dir_.path("absent.safetensors")}});
  EXPECT_NE(r.error.debug.find("gstmimicommon.cpp("), std::string::npos) << r.error.debug;
  EXPECT_EQ(r.error.debug.find("gstkyutai.h"), std::string::npos) << r.error.debug;
}

TEST_P(ModelErrors, ARepositoryMissingFromTheCacheIsNotFound) {
  ScopedEnv cache("HF_HUB_CACHE", dir_.str());
  const StartResult r = start(GetParam(), {{"model", "kyutai/absent-mimi"}});
  EXPECT_EQ(r.change, GST_STATE_CHANGE_FAILURE);
  EXPECT_TRUE(
      is_error(r.error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND, "kyutai/absent-mimi"));
  EXPECT_NE(r.error.debug.find(dir_.str()), std::string::npos) << r.error.debug;
}

TEST_P(ModelErrors, AFileThatIsNotSafetensorsIsALibraryInitError) {
  const std::string path = dir_.path("garbage.safetensors");
  write_file(path, "this is not a safetensors file");
  expect_failure({{"model", path}}, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT, path);
}

TEST_P(ModelErrors, WeightsThatDoNotFitTheConfigurationAreALibraryInitError) {
  std::string config = read_file(tiny_model() + "/config.json");
  const size_t at = config.find("\"n_q\": 8");
  ASSERT_NE(at, std::string::npos);
  config.replace(at, 8, "\"n_q\": 16");
  write_file(dir_.path("config.json"), config);
  write_file(dir_.path("model.safetensors"), read_file(tiny_model() + "/model.safetensors"));
  const StartResult r = start(GetParam(), {{"model", dir_.str()}});
  EXPECT_EQ(r.change, GST_STATE_CHANGE_FAILURE);
  EXPECT_TRUE(
      is_error(r.error, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT, dir_.path("model.safetensors")));
  EXPECT_NE(r.error.debug.find("quantizer"), std::string::npos) << r.error.debug;
}

TEST_P(ModelErrors, ABadDeviceIsABadSetting) {
  expect_failure({{"model", tiny_model()}, {"device", "tpu"}}, GST_RESOURCE_ERROR,
                 GST_RESOURCE_ERROR_SETTINGS, "tpu");
}

TEST_P(ModelErrors, AnEmptyModelIsABadSetting) {
  expect_failure({{"model", ""}}, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS, "model");
}

TEST_P(ModelErrors, NullAndReadyNeedNoModel) {
  GstElement* element =
      GST_ELEMENT(gst_object_ref_sink(make_element(GetParam(), {{"model", dir_.path("absent")}})));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(gst_element_set_state(element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
    EXPECT_EQ(gst_element_set_state(element, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
  gst_object_unref(element);
}

TEST_P(ModelErrors, TheTinyModelStarts) {
  const StartResult r = start(GetParam(), {{"model", tiny_model()}});
  EXPECT_EQ(r.change, GST_STATE_CHANGE_SUCCESS);
  EXPECT_FALSE(r.error.found) << r.error.message;
}

INSTANTIATE_TEST_SUITE_P(BothElements, ModelErrors, ::testing::Values("mimienc", "mimidec"));

TEST(MimiEncSettings, MoreCodebooksThanTheModelHasIsABadSetting) {
  const StartResult r = start("mimienc", {{"model", tiny_model()}, {"num-codebooks", "9"}});
  EXPECT_EQ(r.change, GST_STATE_CHANGE_FAILURE);
  EXPECT_TRUE(is_error(r.error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
                       "num-codebooks is 9 but the model has only 8"));
}

// ---- Progress while loading ----

// Each element that loads a model, on models/moshi-tiny (the Mimi or the LM in it).
class LoadProgress : public ::testing::TestWithParam<const char*> {
 protected:
  static std::string model() { return source_root() + "/models/moshi-tiny"; }
  static std::vector<GstProgressType> types(const StartResult& r) {
    std::vector<GstProgressType> types;
    for (const Progress& p : r.progress) types.push_back(p.type);
    return types;
  }
};

TEST_P(LoadProgress, StartThenPercentagesThenComplete) {
  const StartResult r = start(GetParam(), {{"model", model()}});
  ASSERT_EQ(r.change, GST_STATE_CHANGE_SUCCESS);
  ASSERT_GE(r.progress.size(), 3u);
  EXPECT_EQ(r.progress.front().type, GST_PROGRESS_TYPE_START);
  EXPECT_NE(r.progress.front().text.find(model()), std::string::npos) << r.progress.front().text;
  EXPECT_EQ(r.progress.back().type, GST_PROGRESS_TYPE_COMPLETE);
  EXPECT_EQ(r.progress.back().percent, 100);
  int last = 0;
  for (size_t i = 1; i + 1 < r.progress.size(); ++i) {
    const Progress& p = r.progress[i];
    EXPECT_EQ(p.type, GST_PROGRESS_TYPE_CONTINUE);
    EXPECT_GT(p.percent, last);  // at most one message per whole percent
    EXPECT_NE(p.text.find(std::to_string(p.percent) + "%"), std::string::npos) << p.text;
    last = p.percent;
  }
  EXPECT_EQ(last, 100);
  for (const Progress& p : r.progress) EXPECT_EQ(p.code, "load-model");
}

// A model this process already holds is not loaded again: no percentages.
TEST_P(LoadProgress, ASharedCopyIsStartThenComplete) {
  GstElement* holder =
      GST_ELEMENT(gst_object_ref_sink(make_element(GetParam(), {{"model", model()}})));
  ASSERT_EQ(gst_element_set_state(holder, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
  const StartResult r = start(GetParam(), {{"model", model()}});
  EXPECT_EQ(r.change, GST_STATE_CHANGE_SUCCESS);
  EXPECT_EQ(types(r), (std::vector{GST_PROGRESS_TYPE_START, GST_PROGRESS_TYPE_COMPLETE}));
  gst_element_set_state(holder, GST_STATE_NULL);
  gst_object_unref(holder);
}

TEST_P(LoadProgress, ABadModelIsStartThenError) {
  TempDir dir;
  const std::string path = dir.path("garbage.safetensors");
  write_file(path, "this is not a safetensors file");
  for (const std::string& bad : {path, dir.path("absent.safetensors")}) {
    const StartResult r = start(GetParam(), {{"model", bad}});
    EXPECT_EQ(r.change, GST_STATE_CHANGE_FAILURE);
    EXPECT_TRUE(r.error.found);
    EXPECT_EQ(types(r), (std::vector{GST_PROGRESS_TYPE_START, GST_PROGRESS_TYPE_ERROR}));
  }
}

INSTANTIATE_TEST_SUITE_P(ModelElements, LoadProgress,
                         ::testing::Values("mimienc", "mimidec", "moshilm"));

// ---- Leaks ----

GstTracer* leaks_tracer() {
  GList* tracers = gst_tracing_get_active_tracers();
  GstTracer* found = nullptr;
  for (GList* l = tracers; l; l = l->next)
    if (!found && g_str_equal(G_OBJECT_TYPE_NAME(l->data), "GstLeaksTracer"))
      found = GST_TRACER(gst_object_ref(l->data));
  g_list_free_full(tracers, gst_object_unref);
  return found;
}

// Watches for GstObjects and mini objects created while it lives that outlive the work. It uses
// the leaks tracer's activity checkpoints, which name objects by type and address only: the
// tracer's "get-live-objects" takes over a reference of every object alive (it is meant for the
// end of a process) and so frees objects still in use when called mid-run.
class LeakWatch {
 public:
  explicit LeakWatch(GstTracer* tracer) : tracer_(tracer) {
    g_signal_emit_by_name(tracer_, "activity-start-tracking");
  }
  ~LeakWatch() { g_signal_emit_by_name(tracer_, "activity-stop-tracking"); }
  LeakWatch(const LeakWatch&) = delete;
  LeakWatch& operator=(const LeakWatch&) = delete;

  // The type names of the objects created since the watch began and still alive. Waits up to
  // 5 s for them to go: another thread may drop its last reference to an object just after a
  // teardown has returned (a streaming thread's GstTask, in GStreamer versions that unref it
  // after signalling the joiner).
  std::multiset<std::string> survivors() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      checkpoint();
      std::multiset<std::string> alive;
      for (const auto& [address, net] : net_)
        for (int i = 0; i < net; ++i) alive.insert(type_[address]);
      if (alive.empty() || std::chrono::steady_clock::now() >= deadline) return alive;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  // Adds the objects created and destroyed since the last checkpoint to the net count per
  // address (an address may be reused after a destruction, hence counts, not a set).
  void checkpoint() {
    GstStructure* activity = nullptr;
    g_signal_emit_by_name(tracer_, "activity-get-checkpoint", &activity);
    ASSERT_NE(activity, nullptr);
    for (auto [field, delta] : {std::pair{"objects-created-list", 1}, {"objects-removed-list", -1}}) {
      const GValue* list = gst_structure_get_value(activity, field);
      ASSERT_NE(list, nullptr) << field;
      for (guint i = 0; i < gst_value_list_get_size(list); ++i) {
        const GstStructure* entry = gst_value_get_structure(gst_value_list_get_value(list, i));
        const std::string address = gst_structure_get_string(entry, "address");
        net_[address] += delta;
        if (delta > 0) type_[address] = gst_structure_get_string(entry, "type-name");
      }
    }
    gst_structure_free(activity);
  }

  GstTracer* tracer_;
  std::map<std::string, int> net_;
  std::map<std::string, std::string> type_;
};

// Whether this process maps the file (the weights are memory-mapped while a model is loaded).
bool is_mapped(const std::string& path) {
  return read_file("/proc/self/maps").find(path) != std::string::npos;
}

// Cycles NULL -> READY -> PAUSED -> READY -> PAUSED -> READY -> NULL, and runs a few frames
// through both elements in between.
void cycle_and_stream() {
  for (const char* factory : {"mimienc", "mimidec"}) {
    GstElement* element =
        GST_ELEMENT(gst_object_ref_sink(make_element(factory, {{"model", tiny_model()}})));
    for (GstState state : {GST_STATE_READY, GST_STATE_PAUSED, GST_STATE_READY, GST_STATE_PAUSED,
                           GST_STATE_READY, GST_STATE_NULL})
      ASSERT_EQ(gst_element_set_state(element, state), GST_STATE_CHANGE_SUCCESS);
    gst_object_unref(element);
  }
  Harnessed enc("mimienc", {{"model", tiny_model()}});
  gst_harness_set_src_caps_str(enc.h, enc_sink_caps().c_str());
  ASSERT_EQ(gst_harness_push(enc.h, audio_buffer(golden().audio.data(), 5 * kFrame, 0)),
            GST_FLOW_OK);
  Harnessed dec("mimidec", {{"model", tiny_model()}});
  gst_harness_set_src_caps_str(dec.h, dec_sink_caps().c_str());
  for (GstBuffer* codes : enc.pull_all()) ASSERT_EQ(gst_harness_push(dec.h, codes), GST_FLOW_OK);
  std::vector<GstBuffer*> audio = dec.pull_all();
  EXPECT_EQ(audio.size(), 5u);
  unref_all(audio);
  EXPECT_TRUE(is_mapped(tiny_model() + "/model.safetensors"));
}

// NULL -> READY -> PAUSED -> READY -> PAUSED -> READY -> NULL, with `model`.
void cycle_states(const char* factory, const std::string& model) {
  GstElement* element = GST_ELEMENT(gst_object_ref_sink(make_element(factory, {{"model", model}})));
  for (GstState state : {GST_STATE_READY, GST_STATE_PAUSED, GST_STATE_READY, GST_STATE_PAUSED,
                         GST_STATE_READY, GST_STATE_NULL})
    ASSERT_EQ(gst_element_set_state(element, state), GST_STATE_CHANGE_SUCCESS) << factory;
  gst_object_unref(element);
}

// The same for moshilm and moshibin, on the small models.
void cycle_and_stream_moshi() {
  const std::string lm_tiny = data_path("golden/lm_tiny"),
                    moshi_tiny = source_root() + "/models/moshi-tiny";
  for (auto [factory, model] : {std::pair{"moshilm", lm_tiny}, {"moshibin", moshi_tiny}})
    cycle_states(factory, model);
  // float32 keeps the weights mapped from the file, which shows when they are released.
  Harnessed lm("moshilm", {{"model", lm_tiny}, {"dtype", "float32"}});
  GstHarness* text = gst_harness_new_with_element(lm.element, nullptr, "text_src");
  gst_harness_set_src_caps_str(
      lm.h, "audio/x-mimi,rate=24000,channels=1,frame-size=1920,codebooks=8,cardinality=64");
  for (int s = 0; s < 5; ++s)
    ASSERT_EQ(
        gst_harness_push(lm.h, codes_buffer(std::vector<int64_t>(8, s), s * 80 * GST_MSECOND)),
        GST_FLOW_OK);
  std::vector<GstBuffer*> frames = lm.pull_all();
  EXPECT_EQ(frames.size(), 4u);
  unref_all(frames);
  gst_harness_teardown(text);
  EXPECT_TRUE(is_mapped(lm_tiny + "/model.safetensors"));
}

TEST(StateCycles, MoshiElementsLeakNothing) {
  GstTracer* tracer = leaks_tracer();
  ASSERT_NE(tracer, nullptr) << "run with GST_TRACERS=leaks";
  cycle_and_stream_moshi();  // first use creates process-wide objects: classes, caps caches
  {
    LeakWatch watch(tracer);
    for (int i = 0; i < 5; ++i) cycle_and_stream_moshi();
    EXPECT_EQ(watch.survivors(), std::multiset<std::string>{});
  }
  gst_object_unref(tracer);
  EXPECT_FALSE(is_mapped(data_path("golden/lm_tiny") + "/model.safetensors"));
}

// The same for kyutaisttcore and kyutaistt, on models/stt-tiny, with a drain at EOS.
void cycle_and_stream_stt() {
  const std::string stt_tiny = source_root() + "/models/stt-tiny";
  for (const char* factory : {"kyutaisttcore", "kyutaistt"}) cycle_states(factory, stt_tiny);
  Harnessed stt("kyutaisttcore", {{"model", stt_tiny}, {"weights", "float32"}});
  gst_harness_set_src_caps_str(stt.h, enc_sink_caps().c_str());
  const std::vector<float> audio(5 * 1920, 0.1f);
  ASSERT_EQ(gst_harness_push(stt.h, audio_buffer(audio.data(), audio.size(), 0)), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(stt.h, gst_event_new_eos()));
  std::vector<GstBuffer*> words = stt.pull_all();
  unref_all(words);
  EXPECT_TRUE(is_mapped(stt_tiny + "/model.safetensors"));
}

TEST(StateCycles, SttElementsLeakNothing) {
  GstTracer* tracer = leaks_tracer();
  ASSERT_NE(tracer, nullptr) << "run with GST_TRACERS=leaks";
  cycle_and_stream_stt();  // first use creates process-wide objects: classes, caps caches
  {
    LeakWatch watch(tracer);
    for (int i = 0; i < 3; ++i) cycle_and_stream_stt();
    EXPECT_EQ(watch.survivors(), std::multiset<std::string>{});
  }
  gst_object_unref(tracer);
  EXPECT_FALSE(is_mapped(source_root() + "/models/stt-tiny/model.safetensors"));
}

TEST(StateCycles, LeakNothing) {
  GstTracer* tracer = leaks_tracer();
  ASSERT_NE(tracer, nullptr) << "run with GST_TRACERS=leaks";
  cycle_and_stream();  // first use creates process-wide objects: classes, caps caches
  {
    LeakWatch watch(tracer);
    for (int i = 0; i < 10; ++i) cycle_and_stream();
    EXPECT_EQ(watch.survivors(), std::multiset<std::string>{});
  }
  gst_object_unref(tracer);
  // Once no element uses the model, the shared copy is released.
  EXPECT_FALSE(is_mapped(tiny_model() + "/model.safetensors"));
}

}  // namespace
}  // namespace gstmimi::test
