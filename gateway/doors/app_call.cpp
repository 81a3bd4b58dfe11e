#include "doors/app_call.h"

namespace moshigw {

AnsweredCall answer_call(CallRegistry& registry, const char* door, const std::string& caller,
                         const std::string& peer, std::unique_ptr<MediaEnd> media,
                         std::function<void(const char*)> hangup) {
  AnsweredCall answer;
  answer.refusal = registry.refusal();
  if (!answer.refusal) {
    answer.call = std::make_unique<Call>(registry, door, caller, std::move(media), std::move(hangup));
    std::string error;
    if (answer.call->start(error)) {
      g_message("call %d from %s %s (%s): %s", answer.call->id(), door, caller.c_str(),
                peer.c_str(), answer.call->media().codec().c_str());
      return answer;
    }
    g_warning("call %d from %s %s: %s", answer.call->id(), door, caller.c_str(), error.c_str());
    answer.call->stop("media-failed");
    answer.call.reset();
    answer.refusal = "media";
  }
  g_message("call refused (%s): %s %s (%s)", answer.refusal, door, caller.c_str(), peer.c_str());
  registry.metrics().call_rejected(door, answer.refusal);
  return answer;
}

AppCall answer_app_call(CallRegistry& registry, const char* door, const std::string& caller,
                        const std::string& peer, AppFormat format,
                        std::function<void(const char*)> hangup) {
  auto media = std::make_unique<AppMedia>(std::move(format));
  AppMedia* end = media.get();
  AnsweredCall answer =
      answer_call(registry, door, caller, peer, std::move(media), std::move(hangup));
  AppCall app;
  app.media = answer.call ? end : nullptr;
  app.call = std::move(answer.call);
  app.refusal = answer.refusal;
  return app;
}

}  // namespace moshigw
