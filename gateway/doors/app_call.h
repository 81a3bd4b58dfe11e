// How a socket door (AudioSocket, media streams, Kyutai's /api/chat) turns a connection into a
// call: the registry admits it or says why not, and the call starts with the door's media end.
// The refusal and the answer are counted under the door's label and logged as SIP's are.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "call/app_media.h"
#include "call/call.h"
#include "call/media_end.h"
#include "call/registry.h"

namespace moshigw {

struct AnsweredCall {
  std::unique_ptr<Call> call;     // nullptr when refused
  const char* refusal = nullptr;  // "busy", "shutdown" or "media" when refused
};

// `caller` names the call as its door knows it; `peer` is the connection's address. `media`
// goes to the call (or is dropped with a refusal).
AnsweredCall answer_call(CallRegistry& registry, const char* door, const std::string& caller,
                         const std::string& peer, std::unique_ptr<MediaEnd> media,
                         std::function<void(const char*)> hangup);

struct AppCall {
  std::unique_ptr<Call> call;  // nullptr when refused
  AppMedia* media = nullptr;   // owned by the call
  const char* refusal = nullptr;  // "busy", "shutdown" or "media" when refused
};

// answer_call with an app media end in the caller's `format`.
AppCall answer_app_call(CallRegistry& registry, const char* door, const std::string& caller,
                        const std::string& peer, AppFormat format,
                        std::function<void(const char*)> hangup);

}  // namespace moshigw
