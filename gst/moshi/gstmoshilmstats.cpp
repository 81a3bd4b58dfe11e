#include "gstmoshilmstats.h"

// A GstValueArray of `values`, as `type` (G_TYPE_DOUBLE or G_TYPE_UINT64).
template <typename Values>
static void gst_moshi_lm_stats_set_array(GstStructure* s, const char* field, GType type,
                                         const Values& values) {
  GValue array = G_VALUE_INIT, item = G_VALUE_INIT;
  gst_value_array_init(&array, values.size());
  g_value_init(&item, type);
  for (const auto v : values) {
    if (type == G_TYPE_DOUBLE)
      g_value_set_double(&item, static_cast<double>(v));
    else
      g_value_set_uint64(&item, static_cast<guint64>(v));
    gst_value_array_append_value(&array, &item);
  }
  gst_structure_take_value(s, field, &array);
  g_value_unset(&item);
}

GstStructure* gst_moshi_lm_stats_structure(const kyutai::StepStats& s) {
  GstStructure* structure = gst_structure_new(
      "moshilm-stats", "steps", G_TYPE_UINT64, static_cast<guint64>(s.steps), "total-step-ms",
      G_TYPE_DOUBLE, s.total_ms, "median-step-ms", G_TYPE_DOUBLE, s.median_ms, "p90-step-ms",
      G_TYPE_DOUBLE, s.p90_ms, "max-step-ms", G_TYPE_DOUBLE, s.max_ms, "real-time-factor",
      G_TYPE_DOUBLE, s.real_time_factor, "batch-size", G_TYPE_INT, s.last_batch,
      "mean-batch-size", G_TYPE_DOUBLE, s.mean_batch, "mean-batch-wait-ms", G_TYPE_DOUBLE,
      s.mean_wait_ms, "max-batch-wait-ms", G_TYPE_DOUBLE, s.max_wait_ms, nullptr);
  gst_moshi_lm_stats_set_array(structure, "histogram-bounds-ms", G_TYPE_DOUBLE,
                               kyutai::StepStats::kBucketBoundsMs);
  gst_moshi_lm_stats_set_array(structure, "histogram", G_TYPE_UINT64, s.histogram);
  return structure;
}

GParamSpec* gst_moshi_lm_stats_param_spec() {
  return g_param_spec_boxed(
      "stats", "Statistics",
      "Step times, measured by the library; a step's time includes its wait for the other "
      "conversations. Since the conversation began: steps, total-step-ms, max-step-ms, and "
      "histogram (steps per bucket, an array of uint64) over histogram-bounds-ms (the buckets' "
      "upper bounds, an array of doubles; the last bucket counts the slower steps). Over the "
      "last 256 steps: median-step-ms, p90-step-ms, real-time-factor (median step time over "
      "frame duration; above 1 the model cannot keep up), batch-size (conversations in the "
      "last step), mean-batch-size, mean-batch-wait-ms and max-batch-wait-ms",
      GST_TYPE_STRUCTURE, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
}
