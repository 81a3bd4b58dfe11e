// Which Mimi codes fit moshilm's model: the check of the input caps, and the caps offered
// upstream once the model is known.
#pragma once

#include <gst/gst.h>

#include <string>

#include "kyutai/moshi.h"

// Why caps with structure `s` do not fit a model of format `f` (too few codebooks, another
// cardinality, a byte stream, fields missing), or an empty string.
std::string gst_moshi_lm_caps_misfit(const kyutai::MoshiFormat& f, const GstStructure* s);

// `templ` (the sink template's caps) narrowed to what the model reads: at least `codebooks`
// codebooks of `cardinality` entries, intersected with the query's `filter` (may be null).
GstCaps* gst_moshi_lm_caps_for_model(GstCaps* templ, int codebooks, int cardinality,
                                     GstCaps* filter);
