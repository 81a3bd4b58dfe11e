// moshilm's properties: their ids, their defaults and their documentation.
#pragma once

#include <gst/gst.h>

#include "gstkyutai.h"
#include "kyutai/moshi.h"
#include "kyutai/sampling.h"

// Sampling defaults are the library's (the reference LMGen's), defined once there; so is the
// batch wait. Batching itself is on by default here (off in the library, whose caller may step
// several conversations from one thread).
inline const kyutai::SamplingParams kDefaultSampling;
inline const kyutai::BatchOptions kDefaultBatch;
#define GST_MOSHI_LM_DEFAULT_SEED 0
#define GST_MOSHI_LM_DEFAULT_BATCH TRUE

enum {
  PROP_0,
  PROP_MODEL,  // then the other settings: GST_KYUTAI_N_PROPS ids in all
  PROP_TEMPERATURE = PROP_MODEL + GST_KYUTAI_N_PROPS,
  PROP_TEXT_TEMPERATURE,
  PROP_TOP_K,
  PROP_TEXT_TOP_K,
  PROP_REPETITION_PENALTY,
  PROP_REPETITION_PENALTY_CONTEXT,
  PROP_SEED,
  PROP_BATCH,
  PROP_BATCH_WAIT,
  PROP_KV_INT8,
  PROP_STATS,
  PROP_SPEAKING_HOLD,
};

// Installs every property of moshilm.
void gst_moshi_lm_install_properties(GObjectClass* klass);
