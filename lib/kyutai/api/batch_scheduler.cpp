#include "kyutai/api/batch_scheduler.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <exception>

namespace kyutai {

void encode_audio(const std::vector<AudioIn*>& audio) {
  c10::InferenceMode guard;
  std::vector<at::Tensor> frames;
  std::vector<MimiEncoderState*> states;
  for (const AudioIn* a : audio) {
    frames.push_back(a->frame);
    states.push_back(a->state);
  }
  const at::Tensor codes =
      audio[0]->mimi->encode_step(at::cat(frames, 0), states).to(at::kCPU).contiguous();
  for (size_t i = 0; i < audio.size(); ++i) {
    const int64_t* c = codes.data_ptr<int64_t>() + i * codes.size(1);
    std::vector<int64_t>& out = *audio[i]->codes;
    out.assign(c, c + std::min<int64_t>(codes.size(1), static_cast<int64_t>(out.size())));
  }
}

std::optional<std::vector<int64_t>> BatchScheduler::step(uint64_t member,
                                                         const std::vector<int64_t>& user_codes,
                                                         LmGenState& state,
                                                         const SamplingParams& params,
                                                         double max_wait_ms, StepTiming* info,
                                                         at::Tensor* extra_heads, AudioIn* audio) {
  Row row;
  row.lm.user_codes = &user_codes;
  row.lm.state = &state;
  row.lm.params = &params;
  row.lm.extra_heads = extra_heads;
  row.audio = audio;
  row = batcher_.step(member, std::move(row), max_wait_ms, info);
  if (row.lm.error) std::rethrow_exception(row.lm.error);  // step_batch fails rows one by one
  return std::move(row.lm.result);
}

void BatchScheduler::run(std::vector<Row>& rows) {
  // The audio rows, one encode per Mimi model; an encode that fails fails its own rows only
  // (their streams' encoder states may then be part-way: they need a reset), never the others'.
  std::vector<bool> grouped(rows.size(), false);
  for (size_t first = 0; first < rows.size(); ++first) {
    if (!rows[first].audio || grouped[first]) continue;
    std::vector<size_t> group;
    for (size_t i = first; i < rows.size(); ++i)
      if (rows[i].audio && !grouped[i] && rows[i].audio->mimi == rows[first].audio->mimi) {
        group.push_back(i);
        grouped[i] = true;
      }
    std::vector<AudioIn*> audio;
    for (size_t i : group) audio.push_back(rows[i].audio);
    try {
      encode_audio(audio);
    } catch (...) {
      for (size_t i : group) rows[i].lm.error = std::current_exception();
    }
  }
  std::vector<LmGenRow> lm;
  std::vector<size_t> stepped;
  for (size_t i = 0; i < rows.size(); ++i)
    if (!rows[i].lm.error) {
      lm.push_back(std::move(rows[i].lm));
      stepped.push_back(i);
    }
  gen_.step_batch(lm);
  for (size_t k = 0; k < stepped.size(); ++k) rows[stepped[k]].lm = std::move(lm[k]);
}

}  // namespace kyutai
