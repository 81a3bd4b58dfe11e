#include "call/moshibin.h"

namespace moshigw {

namespace {

// The values of a GstValueArray field, as T (double or guint64).
template <typename T>
std::vector<T> array_field(const GstStructure* s, const char* field) {
  std::vector<T> values;
  const GValue* array = gst_structure_get_value(s, field);
  if (!array || !GST_VALUE_HOLDS_ARRAY(array)) return values;
  for (guint i = 0; i < gst_value_array_get_size(array); ++i) {
    const GValue* v = gst_value_array_get_value(array, i);
    values.push_back(G_VALUE_HOLDS_DOUBLE(v) ? static_cast<T>(g_value_get_double(v))
                                             : static_cast<T>(g_value_get_uint64(v)));
  }
  return values;
}

}  // namespace

void configure_moshibin(GstElement* moshi, const Config& config) {
  // The weight format was parsed at start; the values of moshibin's 'weights' are the enum's.
  g_object_set(moshi, "model", config.model.c_str(), "device", config.device.c_str(), "threads",
               config.threads, "weights", static_cast<gint>(config.weights), nullptr);
}

StepReading read_steps(GstElement* moshi) {
  StepReading r;
  GstStructure* stats = nullptr;
  g_object_get(moshi, "stats", &stats, nullptr);
  if (!stats) return r;
  gst_structure_get_uint64(stats, "steps", &r.steps);
  gst_structure_get_double(stats, "median-step-ms", &r.median_ms);
  gst_structure_get_double(stats, "real-time-factor", &r.real_time_factor);
  gst_structure_get_double(stats, "total-step-ms", &r.total_ms);
  r.bounds_ms = array_field<double>(stats, "histogram-bounds-ms");
  r.counts = array_field<uint64_t>(stats, "histogram");
  gst_structure_free(stats);
  return r;
}

}  // namespace moshigw
