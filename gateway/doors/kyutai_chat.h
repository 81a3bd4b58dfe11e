// The Kyutai door: Kyutai's web-client protocol at /api/chat on the shared HTTP listener, so
// that Kyutai's own web page talks to the gateway unmodified (docs/GATEWAY.md, "Kyutai's web
// client"). One websocket is one call, named by the client's address. The server speaks first
// (a handshake), every message is binary with a kind byte (kyutai/protocol.h), audio both ways
// is Ogg Opus at 24 kHz and Moshi's text goes out as it is produced (kyutai_chat_media.h). The
// query string's sampling settings apply to the call's moshibin; a bad one, a message the
// protocol does not know, or a refusal (max-calls) gets an error message (kind 5), then a close
// code that says why (1008 protocol, 1003 a text frame, 1013 busy).
#pragma once

#include "doors/websocket_door.h"

namespace moshigw {

class KyutaiChat;

class KyutaiChatDoor : public WebsocketDoor<KyutaiChat> {
 public:
  KyutaiChatDoor(CallRegistry& registry, std::shared_ptr<WebServer> web);
  ~KyutaiChatDoor() override;
  // Refused when GStreamer lacks an element of the Ogg Opus chains: no call could be built.
  bool open(std::string& error) override;
  const char* name() const override { return "kyutai"; }
};

}  // namespace moshigw
