/**
 * SECTION:element-moshibin
 * @title: moshibin
 * @see_also: moshilm, mimienc, mimidec
 *
 * A whole Moshi conversation in one element: any audio in, Moshi's voice out (mono float at
 * Mimi's rate, 24 kHz for Kyutai's models), and its inner-monologue text on `text_src`. Inside
 * is `audioconvert ! audioresample ! mimienc ! moshilm ! mimidec`, all using the one `model`,
 * which locates Mimi, Moshi and the tokenizer together as Kyutai's repositories lay them out.
 * The audio output goes through a queue, so that a sink prerolling on the text branch never
 * blocks it; the text pad may also be left unlinked.
 *
 * ## Example pipeline
 * |[
 * gst-launch-1.0 autoaudiosrc ! moshibin model=kyutai/moshiko-pytorch-bf16 ! autoaudiosink
 * ]|
 */
#include "gstmoshibin.h"

#include <string>

#include "gstkyutaibin.h"
#include "gstmoshisettings.h"
#include "gstmoshilm.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"

GST_DEBUG_CATEGORY_STATIC(gst_moshi_bin_debug);
#define GST_CAT_DEFAULT gst_moshi_bin_debug

enum {
  PROP_0,
  PROP_MODEL,  // then the other settings: GST_KYUTAI_N_PROPS ids in all
  PROP_LM_FIRST = PROP_MODEL + GST_KYUTAI_N_PROPS,  // sampling properties, proxied to moshilm
};

// moshilm's properties that the bin exposes as its own.
static const char* const kLmProperties[] = {
    "temperature",        "text-temperature",           "top-k", "text-top-k",
    "repetition-penalty", "repetition-penalty-context", "seed",  "kv-int8",
    "stats",              "speaking-hold"};

struct _GstMoshiBin {
  GstBin parent;
  // Properties, under the object lock.
  GstKyutaiSettings settings;
  // Children, made in _init and owned by the bin.
  GstElement* convert;
  GstElement* resample;
  GstElement* encoder;
  GstElement* lm;
  GstElement* decoder;
  GstElement* audio_queue;
};

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("audio/x-raw"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-raw, format = (string) F32LE, layout = (string) interleaved, "
                    "rate = (int) [ 1, MAX ], channels = (int) 1"));
static GstStaticPadTemplate text_template = GST_STATIC_PAD_TEMPLATE(
    "text_src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format = (string) utf8"));

#define gst_moshi_bin_parent_class parent_class
G_DEFINE_TYPE(GstMoshiBin, gst_moshi_bin, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE(moshibin, "moshibin", GST_RANK_NONE, GST_TYPE_MOSHI_BIN);

static void gst_moshi_bin_set_property(GObject* object, guint prop_id, const GValue* value,
                                       GParamSpec* pspec) {
  GstMoshiBin* self = GST_MOSHI_BIN(object);
  if (prop_id >= PROP_LM_FIRST && self->lm) {
    g_object_set_property(G_OBJECT(self->lm), pspec->name, value);
    return;
  }
  if (!gst_kyutai_settings_set_property(GST_ELEMENT(self), &self->settings, prop_id - PROP_MODEL,
                                        value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

static void gst_moshi_bin_get_property(GObject* object, guint prop_id, GValue* value,
                                       GParamSpec* pspec) {
  GstMoshiBin* self = GST_MOSHI_BIN(object);
  if (prop_id >= PROP_LM_FIRST && self->lm) {
    g_object_get_property(G_OBJECT(self->lm), pspec->name, value);
    return;
  }
  if (!gst_kyutai_settings_get_property(GST_ELEMENT(self), &self->settings, prop_id - PROP_MODEL,
                                        value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

// Where the model is, and the codebooks Mimi must encode (the library knows how many).
static bool gst_moshi_bin_locate(GstMoshiBin* self, const std::string& model,
                                 kyutai::MoshiFiles* files) {
  const auto sentence = [&](GstKyutaiErrorCode code) {
    return gst_kyutai_error_is_not_found(code)
               ? "Moshi model '" + model + "' not found."
               : "Cannot use the Moshi model '" + model + "'.";
  };
  return GST_KYUTAI_TRY(GST_ELEMENT(self), LIBRARY, INIT, sentence, [&] {
    *files = kyutai::locate_moshi(model);
    if (files->mimi.weights.empty())
      throw kyutai::NotFoundError("the repository holds no Mimi weights");
  });
}

// Hands the settings to the children, before they leave NULL.
static bool gst_moshi_bin_configure(GstMoshiBin* self) {
  const GstKyutaiConfig config = gst_kyutai_settings_copy(GST_ELEMENT(self), &self->settings);
  if (!GST_KYUTAI_CHECK_WEIGHTS(GST_ELEMENT(self), config)) return false;
  kyutai::MoshiFiles files;
  if (!gst_moshi_bin_locate(self, config.model, &files)) return false;
  GST_INFO_OBJECT(self, "model %s in %s, %d codebooks", files.weights.c_str(), files.dir.c_str(),
                  files.mimi_codebooks());
  // moshilm gets what the user named (a weights file is used as named); the Mimi elements get
  // the repository directory, where config.json names Mimi's files.
  g_object_set(self->lm, "model", files.path.c_str(), nullptr);
  for (GstElement* child : {self->encoder, self->decoder})
    g_object_set(child, "model", files.dir.c_str(), nullptr);
  for (GstElement* child : {self->encoder, self->lm, self->decoder})
    g_object_set(child, "device", config.device.c_str(), "threads", config.threads, nullptr);
  g_object_set(self->encoder, "num-codebooks", files.mimi_codebooks(), nullptr);
  g_object_set(self->lm, "weights", static_cast<gint>(config.weights), nullptr);
  return true;
}

// `weights` reads back what moshilm loaded, while it holds the model.
static void gst_moshi_bin_track_weights(GstMoshiBin* self, GstStateChange transition) {
  gint loaded = static_cast<gint>(kyutai::WeightFormat::Auto);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
    g_object_get(self->lm, "weights", &loaded, nullptr);
  else if (transition != GST_STATE_CHANGE_PAUSED_TO_READY)
    return;
  gst_kyutai_settings_set_resolved(GST_ELEMENT(self), &self->settings,
                                   static_cast<kyutai::WeightFormat>(loaded));
}

static GstStateChangeReturn gst_moshi_bin_change_state(GstElement* element,
                                                       GstStateChange transition) {
  GstMoshiBin* self = GST_MOSHI_BIN(element);
  if (transition == GST_STATE_CHANGE_NULL_TO_READY && !self->lm) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
                      ("moshibin needs audioconvert, audioresample, mimienc, moshilm and mimidec."),
                      (nullptr));
    return GST_STATE_CHANGE_FAILURE;
  }
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !gst_moshi_bin_configure(self))
    return GST_STATE_CHANGE_FAILURE;
  const GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
  if (ret != GST_STATE_CHANGE_FAILURE) gst_moshi_bin_track_weights(self, transition);
  return ret;
}

static void gst_moshi_bin_init(GstMoshiBin* self) {
  gst_kyutai_settings_init(&self->settings, TRUE);
  bool ok = true;
  self->convert = gst_kyutai_bin_make("audioconvert", "convert", &ok);
  self->resample = gst_kyutai_bin_make("audioresample", "resample", &ok);
  self->encoder = gst_kyutai_bin_make("mimienc", "mimienc", &ok);
  self->lm = gst_kyutai_bin_make("moshilm", "moshilm", &ok);
  self->decoder = gst_kyutai_bin_make("mimidec", "mimidec", &ok);
  // Both outputs are fed by one streaming thread. moshilm pushes the audio first: behind this
  // queue it cannot block, so the text branch may preroll (and block) while the audio branch
  // prerolls on its own thread. The text pad has no queue, so that leaving it unlinked is fine.
  self->audio_queue = gst_kyutai_bin_make("queue", "audio_queue", &ok);
  GstElement* all[] = {self->convert, self->resample, self->encoder,
                       self->lm,      self->decoder,  self->audio_queue};
  if (!ok) {  // a missing plugin: keep nothing, and fail on the first state change
    for (GstElement* e : all)
      if (e) gst_object_unref(gst_object_ref_sink(e));
    self->lm = nullptr;
    return;
  }
  for (GstElement* e : all) gst_bin_add(GST_BIN(self), e);
  gst_element_link_many(self->convert, self->resample, self->encoder, self->lm, self->decoder,
                        self->audio_queue, nullptr);
  gst_kyutai_bin_ghost(GST_BIN(self), self->convert, "sink", &sink_template);
  gst_kyutai_bin_ghost(GST_BIN(self), self->audio_queue, "src", &src_template);
  gst_kyutai_bin_ghost(GST_BIN(self), self->lm, "text_src", &text_template);
}

static void gst_moshi_bin_finalize(GObject* object) {
  gst_kyutai_settings_clear(&GST_MOSHI_BIN(object)->settings);
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_moshi_bin_install_lm_properties(GObjectClass* klass) {
  auto* lm_class = static_cast<GObjectClass*>(g_type_class_ref(GST_TYPE_MOSHI_LM));
  guint id = PROP_LM_FIRST;
  for (const char* name : kLmProperties)
    g_object_class_install_property(
        klass, id++, gst_kyutai_clone_param_spec(g_object_class_find_property(lm_class, name)));
  g_type_class_unref(lm_class);
}

static void gst_moshi_bin_class_init(GstMoshiBinClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = gst_moshi_bin_set_property;
  gobject_class->get_property = gst_moshi_bin_get_property;
  gobject_class->finalize = gst_moshi_bin_finalize;
  gst_moshi_install_settings(gobject_class, PROP_MODEL);
  gst_moshi_bin_install_lm_properties(gobject_class);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_moshi_bin_change_state);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_add_static_pad_template(element_class, &text_template);
  gst_element_class_set_static_metadata(
      element_class, "Moshi conversation", "Filter/Audio",
      "A full-duplex conversation with Kyutai's Moshi: the user's voice in (any audio), "
      "Moshi's voice out (mono float at Mimi's rate) and its inner-monologue text on text_src. "
      "Holds audioconvert ! audioresample ! mimienc ! moshilm ! mimidec, all set from one model "
      "property.",
      "gst-moshi developers");
  gst_element_class_add_static_metadata(
      element_class, "example",
      "gst-launch-1.0 autoaudiosrc ! moshibin model=kyutai/moshiko-pytorch-bf16 ! "
      "autoaudiosink");
  GST_DEBUG_CATEGORY_INIT(gst_moshi_bin_debug, "moshibin", 0, "Moshi conversation bin");
}
