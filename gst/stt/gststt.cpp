// The stt plugin: Kyutai's streaming speech-to-text as a transcriber on raw audio.
#include <gst/gst.h>

#include "gstkyutaistt.h"
#include "gstkyutaisttcore.h"

static gboolean plugin_init(GstPlugin* plugin) {
  gboolean registered = GST_ELEMENT_REGISTER(kyutaisttcore, plugin);
  registered |= GST_ELEMENT_REGISTER(kyutaistt, plugin);
  return registered;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, kyutaistt,
                  "Kyutai's streaming speech-to-text models", plugin_init, VERSION, "MIT/X11",
                  GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
