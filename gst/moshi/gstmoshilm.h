#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MOSHI_LM (gst_moshi_lm_get_type())
G_DECLARE_FINAL_TYPE(GstMoshiLm, gst_moshi_lm, GST, MOSHI_LM, GstElement)

GST_ELEMENT_REGISTER_DECLARE(moshilm);

G_END_DECLS
