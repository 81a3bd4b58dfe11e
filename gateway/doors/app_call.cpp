#include "doors/app_call.h"

namespace moshigw {

AppCall answer_app_call(CallRegistry& registry, const char* door, const std::string& caller,
                        const std::string& peer, AppFormat format,
                        std::function<void(const char*)> hangup) {
  AppCall answer;
  answer.refusal = registry.refusal();
  if (!answer.refusal) {
    auto media = std::make_unique<AppMedia>(std::move(format));
    answer.media = media.get();
    answer.call = std::make_unique<Call>(registry, door, caller, std::move(media), std::move(hangup));
    std::string error;
    if (answer.call->start(error)) {
      g_message("call %d from %s %s (%s): %s", answer.call->id(), door, caller.c_str(),
                peer.c_str(), answer.media->codec().c_str());
      return answer;
    }
    g_warning("call %d from %s %s: %s", answer.call->id(), door, caller.c_str(), error.c_str());
    answer.call->stop("media-failed");
    answer.call.reset();
    answer.media = nullptr;
    answer.refusal = "media";
  }
  g_message("call refused (%s): %s %s (%s)", answer.refusal, door, caller.c_str(), peer.c_str());
  registry.metrics().call_rejected(door, answer.refusal);
  return answer;
}

}  // namespace moshigw
