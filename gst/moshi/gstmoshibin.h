#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MOSHI_BIN (gst_moshi_bin_get_type())
G_DECLARE_FINAL_TYPE(GstMoshiBin, gst_moshi_bin, GST, MOSHI_BIN, GstBin)

GST_ELEMENT_REGISTER_DECLARE(moshibin);

G_END_DECLS
