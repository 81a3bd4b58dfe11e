// The model settings of the moshi plugin: the properties moshilm and moshibin share, and the
// check of the values that are wrong whatever the model.
#pragma once

#include <gst/gst.h>

#include "gstkyutai.h"

// Installs model (documented for Moshi's repositories), device, threads, weights and dtype from
// `first`.
void gst_moshi_install_settings(GObjectClass* klass, guint first);

// Posts RESOURCE/SETTINGS and returns false when no model is given, or the device or weight
// format is wrong whatever the model (an unknown dtype; int8 and int4 off the CPU, too).
bool gst_moshi_check_settings(GstElement* element, const GstKyutaiConfig& config);
