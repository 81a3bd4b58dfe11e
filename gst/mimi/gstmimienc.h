// mimienc: mono float audio at the model's rate in, one buffer of Mimi codes per frame out.
#pragma once

#include <gst/audio/gstaudioencoder.h>

G_BEGIN_DECLS

#define GST_TYPE_MIMI_ENC (gst_mimi_enc_get_type())
G_DECLARE_FINAL_TYPE(GstMimiEnc, gst_mimi_enc, GST, MIMI_ENC, GstAudioEncoder)

GST_ELEMENT_REGISTER_DECLARE(mimienc);

G_END_DECLS
