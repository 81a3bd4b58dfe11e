// The media-stream door: a websocket at /media-stream on the shared HTTP listener, in the shape
// of Twilio's Media Streams (Telnyx, Plivo and others use it too). JSON text messages in:
// connected, start (streamSid, callSid, mediaFormat: audio/x-mulaw, 8000 Hz, mono), media
// (base64 mu-law, 20 ms), dtmf, mark, stop; out: media (with the streamSid), and a mark after
// each second of Moshi's voice. One websocket is one call; the door closes it with a status code
// that says why (1013 busy, 1008 protocol, 1000 done). docs/GATEWAY.md has the mapping.
#pragma once

#include "doors/websocket_door.h"

namespace moshigw {

class MediaStream;

class MediaStreamDoor : public WebsocketDoor<MediaStream> {
 public:
  MediaStreamDoor(CallRegistry& registry, std::shared_ptr<WebServer> web);
  ~MediaStreamDoor() override;
  const char* name() const override { return "media-stream"; }
};

}  // namespace moshigw
