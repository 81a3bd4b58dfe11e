#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_KYUTAI_STT_CORE (gst_kyutai_stt_core_get_type())
G_DECLARE_FINAL_TYPE(GstKyutaiSttCore, gst_kyutai_stt_core, GST, KYUTAI_STT_CORE, GstElement)

GST_ELEMENT_REGISTER_DECLARE(kyutaisttcore);

G_END_DECLS
