#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_KYUTAI_STT (gst_kyutai_stt_get_type())
G_DECLARE_FINAL_TYPE(GstKyutaiStt, gst_kyutai_stt, GST, KYUTAI_STT, GstBin)

GST_ELEMENT_REGISTER_DECLARE(kyutaistt);

G_END_DECLS
