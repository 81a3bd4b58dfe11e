// moshilm's stats property: the library's step statistics of its conversation
// (kyutai::StepStats) as a GstStructure, described in docs/ELEMENTS.md.
#pragma once

#include <gst/gst.h>

#include "kyutai/moshi.h"

// A new "moshilm-stats" structure with the figures of `s`.
GstStructure* gst_moshi_lm_stats_structure(const kyutai::StepStats& s);

// The read-only `stats` property, whose blurb lists the structure's fields.
GParamSpec* gst_moshi_lm_stats_param_spec();
