#include "gstkyutaiprogress.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>

GST_DEBUG_CATEGORY_STATIC(gst_kyutai_progress_debug);
#define GST_CAT_DEFAULT gst_kyutai_progress_debug

GstKyutaiLoadProgress::GstKyutaiLoadProgress(GstElement* element, const char* what,
                                             const std::string& spec)
    : element_(element), what_(what), spec_(spec), start_us_(g_get_monotonic_time()) {
  static gsize initialized = 0;
  if (g_once_init_enter(&initialized)) {
    GST_DEBUG_CATEGORY_INIT(gst_kyutai_progress_debug, "kyutaiload", 0,
                            "Model loading in the gst-moshi elements");
    g_once_init_leave(&initialized, 1);
  }
  post(GST_PROGRESS_TYPE_START, "Loading the " + what_ + " model '" + spec_ + "'.", 0);
}

GstKyutaiLoadProgress::~GstKyutaiLoadProgress() {
  if (!done_)
    post(GST_PROGRESS_TYPE_ERROR, "Could not load the " + what_ + " model '" + spec_ + "'.",
         percent_);
}

kyutai::LoadProgress GstKyutaiLoadProgress::callback() {
  return [this](double fraction) { fraction_done(fraction); };
}

void GstKyutaiLoadProgress::fraction_done(double fraction) {
  const int percent = static_cast<int>(std::floor(std::clamp(fraction, 0.0, 1.0) * 100));
  loaded_ = true;
  if (percent <= percent_) return;  // at most one message per whole percent
  percent_ = percent;
  post(GST_PROGRESS_TYPE_CONTINUE,
       "Loading the " + what_ + " model: " + std::to_string(percent) + "%.", percent);
}

static std::string gst_kyutai_size_text(std::uintmax_t bytes) {
  g_autofree gchar* text = g_format_size_full(bytes, G_FORMAT_SIZE_LONG_FORMAT);
  return text;
}

void GstKyutaiLoadProgress::complete(const std::string& weights) {
  done_ = true;
  std::error_code error;
  const std::uintmax_t bytes = std::filesystem::file_size(weights, error);
  const double seconds = (g_get_monotonic_time() - start_us_) / 1e6;
  const std::string size = error ? "size unknown" : gst_kyutai_size_text(bytes);
  GST_INFO_OBJECT(element_, "%s model %s (%s) %s in %.3f s", what_.c_str(), weights.c_str(),
                  size.c_str(), loaded_ ? "loaded" : "shared, already loaded", seconds);
  post(
      GST_PROGRESS_TYPE_COMPLETE,
      (loaded_ ? "Loaded the " : "Using the already loaded ") + what_ + " model '" + weights + "'.",
      100);
}

void GstKyutaiLoadProgress::post(GstProgressType type, const std::string& text, int percent) {
  GstMessage* message =
      gst_message_new_progress(GST_OBJECT(element_), type, GST_KYUTAI_PROGRESS_LOAD, text.c_str());
  gst_structure_set(gst_message_writable_structure(message), "percent", G_TYPE_INT, percent,
                    nullptr);
  gst_element_post_message(element_, message);
}
