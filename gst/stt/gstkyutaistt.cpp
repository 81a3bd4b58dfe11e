/**
 * SECTION:element-kyutaistt
 * @title: kyutaistt
 * @see_also: kyutaisttcore, moshibin
 *
 * A live transcriber with Kyutai's streaming speech-to-text (kyutai/stt-1b-en_fr,
 * kyutai/stt-2.6b-en): any audio in, the words out as text/x-raw (format=utf8), one buffer per
 * word timestamped with its start and lasting until its end, GAP events between words, and an
 * element message and a custom downstream event "kyutai-stt-end-of-turn" when the user's turn
 * ends. Inside is `audioconvert ! audioresample ! kyutaisttcore`, whose properties the bin
 * exposes as its own; the element messages come from the inner kyutaisttcore (named "stt").
 * See kyutaisttcore for the timing, the latency and the end of stream.
 *
 * ## Example pipeline
 * |[
 * gst-launch-1.0 autoaudiosrc ! kyutaistt model=kyutai/stt-1b-en_fr ! fdsink fd=1
 * ]|
 */
#include "gstkyutaistt.h"

#include "gstkyutaibin.h"
#include "gstkyutaisttcore.h"

GST_DEBUG_CATEGORY_STATIC(gst_kyutai_stt_debug);
#define GST_CAT_DEFAULT gst_kyutai_stt_debug

struct _GstKyutaiStt {
  GstBin parent;
  // Children, made in _init and owned by the bin; null when a plugin is missing.
  GstElement* stt;
};

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("audio/x-raw"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format = (string) utf8"));

#define gst_kyutai_stt_parent_class parent_class
G_DEFINE_TYPE(GstKyutaiStt, gst_kyutai_stt, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE(kyutaistt, "kyutaistt", GST_RANK_NONE, GST_TYPE_KYUTAI_STT);

// Every property is kyutaisttcore's, by the same name.
static void gst_kyutai_stt_set_property(GObject* object, guint /*prop_id*/, const GValue* value,
                                        GParamSpec* pspec) {
  GstKyutaiStt* self = GST_KYUTAI_STT(object);
  if (self->stt) g_object_set_property(G_OBJECT(self->stt), pspec->name, value);
}

static void gst_kyutai_stt_get_property(GObject* object, guint /*prop_id*/, GValue* value,
                                        GParamSpec* pspec) {
  GstKyutaiStt* self = GST_KYUTAI_STT(object);
  if (self->stt) g_object_get_property(G_OBJECT(self->stt), pspec->name, value);
}

static GstStateChangeReturn gst_kyutai_stt_change_state(GstElement* element,
                                                        GstStateChange transition) {
  GstKyutaiStt* self = GST_KYUTAI_STT(element);
  if (transition == GST_STATE_CHANGE_NULL_TO_READY && !self->stt) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
                      ("kyutaistt needs audioconvert, audioresample and kyutaisttcore."),
                      (nullptr));
    return GST_STATE_CHANGE_FAILURE;
  }
  return GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
}

static void gst_kyutai_stt_init(GstKyutaiStt* self) {
  bool ok = true;
  GstElement* convert = gst_kyutai_bin_make("audioconvert", "convert", &ok);
  GstElement* resample = gst_kyutai_bin_make("audioresample", "resample", &ok);
  GstElement* stt = gst_kyutai_bin_make("kyutaisttcore", "stt", &ok);
  GstElement* all[] = {convert, resample, stt};
  if (!ok) {  // a missing plugin: keep nothing, and fail on the first state change
    for (GstElement* e : all)
      if (e) gst_object_unref(gst_object_ref_sink(e));
    return;
  }
  self->stt = stt;
  for (GstElement* e : all) gst_bin_add(GST_BIN(self), e);
  gst_element_link_many(convert, resample, stt, nullptr);
  gst_kyutai_bin_ghost(GST_BIN(self), convert, "sink", &sink_template);
  gst_kyutai_bin_ghost(GST_BIN(self), stt, "src", &src_template);
}

// kyutaisttcore's own properties, with their documentation.
static void gst_kyutai_stt_install_properties(GObjectClass* klass) {
  auto* core_class = static_cast<GObjectClass*>(g_type_class_ref(GST_TYPE_KYUTAI_STT_CORE));
  guint n = 0;
  g_autofree GParamSpec** specs = g_object_class_list_properties(core_class, &n);
  guint id = 1;
  for (guint i = 0; i < n; ++i)
    if (specs[i]->owner_type == GST_TYPE_KYUTAI_STT_CORE)
      g_object_class_install_property(klass, id++, gst_kyutai_clone_param_spec(specs[i]));
  g_type_class_unref(core_class);
}

static void gst_kyutai_stt_class_init(GstKyutaiSttClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = gst_kyutai_stt_set_property;
  gobject_class->get_property = gst_kyutai_stt_get_property;
  gst_kyutai_stt_install_properties(gobject_class);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_kyutai_stt_change_state);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Kyutai STT transcriber", "Filter/Audio/Text",
      "Live speech-to-text with Kyutai's streaming STT models: any audio in, one text buffer "
      "per word with its timestamps out, GAP events between words, and an end-of-turn message "
      "and event. Holds audioconvert ! audioresample ! kyutaisttcore.",
      "gst-moshi developers");
  gst_element_class_add_static_metadata(
      element_class, "example",
      "gst-launch-1.0 autoaudiosrc ! kyutaistt model=kyutai/stt-1b-en_fr ! fdsink fd=1");
  GST_DEBUG_CATEGORY_INIT(gst_kyutai_stt_debug, "kyutaistt", 0, "Kyutai STT transcriber bin");
}
