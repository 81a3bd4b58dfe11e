#include "gstmoshilmcaps.h"

#include "gstkyutai.h"

std::string gst_moshi_lm_caps_misfit(const kyutai::MoshiFormat& f, const GstStructure* s) {
  gint codebooks = 0, cardinality = 0, rate = 0, frame_size = 0;
  if (!gst_structure_get_int(s, "codebooks", &codebooks) ||
      !gst_structure_get_int(s, "cardinality", &cardinality) ||
      !gst_structure_get_int(s, "rate", &rate) ||
      !gst_structure_get_int(s, "frame-size", &frame_size) || rate <= 0 || frame_size <= 0)
    return "codebooks, cardinality, rate or frame-size is missing";
  if (codebooks < f.user_codebooks)
    return "the stream has " + std::to_string(codebooks) + " codebooks but the model needs " +
           std::to_string(f.user_codebooks);
  if (cardinality != f.cardinality)
    return "the codes have a cardinality of " + std::to_string(cardinality) +
           " but the model's is " + std::to_string(f.cardinality);
  gboolean framed = TRUE;
  if (gst_structure_get_boolean(s, "framed", &framed) && !framed)
    return "moshilm needs one frame per buffer (framed=true); a byte stream (framed=false, from "
           "a file) must go through mimidec and mimienc first";
  return {};
}

GstCaps* gst_moshi_lm_caps_for_model(GstCaps* templ, int codebooks, int cardinality,
                                     GstCaps* filter) {
  g_autoptr(GstCaps) caps = gst_caps_copy(templ);
  gst_caps_set_simple(caps, "codebooks", GST_TYPE_INT_RANGE, codebooks,
                      GST_KYUTAI_MIMI_MAX_CODEBOOKS, "cardinality", G_TYPE_INT, cardinality,
                      nullptr);
  return filter ? gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST)
                : gst_caps_ref(caps);
}
