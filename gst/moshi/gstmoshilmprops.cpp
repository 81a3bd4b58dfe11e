#include "gstmoshilmprops.h"

#include "gstmoshilmstats.h"
#include "gstmoshisettings.h"
#include "gstmoshispeaking.h"

// Kyutai's Rust server's penalty on repeated text tokens (its web client's
// repetition_penalty and repetition_penalty_context).
static void gst_moshi_lm_install_repetition_penalty(GObjectClass* klass, GParamFlags playing) {
  g_object_class_install_property(
      klass, PROP_REPETITION_PENALTY,
      g_param_spec_double("repetition-penalty", "Repetition penalty",
                          "Before a text token is sampled, the scores of the distinct text "
                          "tokens among the last repetition-penalty-context ones (padding not "
                          "counted) are divided by this when positive, multiplied when "
                          "negative, as Kyutai's Rust server does; 1 is off. Can change while "
                          "playing",
                          0.01, 100.0, kDefaultSampling.repetition_penalty, playing));
  g_object_class_install_property(
      klass, PROP_REPETITION_PENALTY_CONTEXT,
      g_param_spec_uint("repetition-penalty-context", "Repetition penalty context",
                        "How many of the latest text tokens (padding not counted) the "
                        "repetition penalty looks back over. Can change while playing",
                        0, kyutai::kMaxRepetitionPenaltyContext,
                        static_cast<guint>(kDefaultSampling.repetition_penalty_context),
                        playing));
}

// The properties read when the element starts: batching and the KV cache's format.
static void gst_moshi_lm_install_start_properties(GObjectClass* klass) {
  const auto at_start = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                 GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      klass, PROP_BATCH,
      g_param_spec_boolean("batch", "Batch",
                           "Step together with the other moshilm elements of this process that "
                           "use the same model, device and weight format: the weights are read "
                           "once for all, and each conversation's output is the same as alone. "
                           "Applies from the next start",
                           GST_MOSHI_LM_DEFAULT_BATCH, at_start));
  g_object_class_install_property(
      klass, PROP_BATCH_WAIT,
      g_param_spec_double("batch-wait", "Batch wait",
                          "The longest a step waits for the other conversations, in "
                          "milliseconds; added to the reported latency. A conversation that "
                          "misses a step is not waited for until it comes back. Applies from "
                          "the next start",
                          0.0, 1000.0, kDefaultBatch.max_wait_ms, at_start));
  g_object_class_install_property(
      klass, PROP_KV_INT8,
      g_param_spec_boolean("kv-int8", "Int8 KV cache",
                           "Keep the conversation's attention cache in int8 with a scale per "
                           "head and position: half the bytes of bfloat16 that a long context "
                           "reads at every step, about 0.7 % relative error on the logits "
                           "(docs/QUANTIZATION.md). CPU only. Applies from the next start",
                           FALSE, at_start));
}

void gst_moshi_lm_install_properties(GObjectClass* klass) {
  gst_moshi_install_settings(klass, PROP_MODEL);
  const auto playing = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      klass, PROP_TEMPERATURE,
      g_param_spec_double("temperature", "Temperature",
                          "Sampling temperature of Moshi's audio codes; 0 picks the most likely "
                          "code (greedy). Can change while playing",
                          0.0, 100.0, kDefaultSampling.temperature, playing));
  g_object_class_install_property(
      klass, PROP_TEXT_TEMPERATURE,
      g_param_spec_double("text-temperature", "Text temperature",
                          "Sampling temperature of Moshi's text tokens; 0 is greedy. Can change "
                          "while playing",
                          0.0, 100.0, kDefaultSampling.text_temperature, playing));
  g_object_class_install_property(
      klass, PROP_TOP_K,
      g_param_spec_int("top-k", "Top k",
                       "Audio codes are sampled among the k most likely; 0 for all. Can change "
                       "while playing",
                       0, G_MAXINT, kDefaultSampling.top_k, playing));
  g_object_class_install_property(
      klass, PROP_TEXT_TOP_K,
      g_param_spec_int("text-top-k", "Text top k",
                       "Text tokens are sampled among the k most likely; 0 for all. Can change "
                       "while playing",
                       0, G_MAXINT, kDefaultSampling.text_top_k, playing));
  gst_moshi_lm_install_repetition_penalty(klass, playing);
  g_object_class_install_property(
      klass, PROP_SEED,
      g_param_spec_uint64("seed", "Seed",
                          "Seed of the sampling's random generator: the same seed and input give "
                          "the same conversation. Applies from the next conversation",
                          0, G_MAXUINT64, GST_MOSHI_LM_DEFAULT_SEED,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                   GST_PARAM_MUTABLE_PLAYING)));
  gst_moshi_lm_install_start_properties(klass);
  g_object_class_install_property(klass, PROP_STATS, gst_moshi_lm_stats_param_spec());
  g_object_class_install_property(klass, PROP_SPEAKING_HOLD, gst_moshi_speaking_hold_param_spec());
}
