#include "gstkyutaisttturn.h"

const char* const gst_kyutai_stt_vad_fields[GST_KYUTAI_STT_VAD_HEADS] = {"p-0-5s", "p-1s",
                                                                          "p-2s", "p-3s"};

bool GstKyutaiSttTurn::step(const std::vector<float>& vad, int head, double threshold) {
  if (!spoke_ || head < 0 || static_cast<size_t>(head) >= vad.size()) return false;
  if (vad[head] <= threshold) return false;
  spoke_ = false;
  return true;
}

GstStructure* gst_kyutai_stt_end_of_turn_new(GstClockTime running_time,
                                             const std::vector<float>& vad) {
  GstStructure* s =
      gst_structure_new(GST_KYUTAI_STT_END_OF_TURN, "running-time", G_TYPE_UINT64, running_time,
                        nullptr);
  for (size_t i = 0; i < vad.size() && i < GST_KYUTAI_STT_VAD_HEADS; ++i)
    gst_structure_set(s, gst_kyutai_stt_vad_fields[i], G_TYPE_DOUBLE, static_cast<double>(vad[i]),
                      nullptr);
  return s;
}
