// mimidec: Mimi codes in, one frame of mono float audio at the model's rate out per code frame.
#pragma once

#include <gst/audio/gstaudiodecoder.h>

G_BEGIN_DECLS

#define GST_TYPE_MIMI_DEC (gst_mimi_dec_get_type())
G_DECLARE_FINAL_TYPE(GstMimiDec, gst_mimi_dec, GST, MIMI_DEC, GstAudioDecoder)

GST_ELEMENT_REGISTER_DECLARE(mimidec);

G_END_DECLS
