// The mimi plugin: Kyutai's Mimi neural audio codec as an encoder and a decoder element.
#include <gst/gst.h>

#include "gstmimidec.h"
#include "gstmimienc.h"

static gboolean plugin_init(GstPlugin* plugin) {
  gboolean registered = FALSE;
  registered |= GST_ELEMENT_REGISTER(mimienc, plugin);
  registered |= GST_ELEMENT_REGISTER(mimidec, plugin);
  return registered;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, mimi,
                  "Kyutai's Mimi neural audio codec: 24 kHz speech as 12.5 frames per second of "
                  "codebook indices",
                  plugin_init, VERSION, "MIT/X11", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
