// The moshi plugin: Kyutai's Moshi dialogue model as an element on Mimi codes, and a bin that
// holds a whole conversation from audio in to audio out.
#include <gst/gst.h>

#include "gstmoshibin.h"
#include "gstmoshilm.h"

static gboolean plugin_init(GstPlugin* plugin) {
  gboolean registered = GST_ELEMENT_REGISTER(moshilm, plugin);
  registered |= GST_ELEMENT_REGISTER(moshibin, plugin);
  return registered;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, moshi,
                  "Kyutai's Moshi full-duplex speech dialogue model", plugin_init, VERSION,
                  "MIT/X11", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
