// The media-stream door: a websocket at /media-stream on the shared HTTP listener, in the shape
// of Twilio's Media Streams (Telnyx, Plivo and others use it too). JSON text messages in:
// connected, start (streamSid, callSid, mediaFormat: audio/x-mulaw, 8000 Hz, mono), media
// (base64 mu-law, 20 ms), dtmf, mark, stop; out: media (with the streamSid), and a mark after
// each second of Moshi's voice. One websocket is one call; the door closes it with a status code
// that says why (1013 busy, 1008 protocol, 1000 done). docs/GATEWAY.md has the mapping.
#pragma once

#include <libsoup/soup.h>

#include <map>
#include <memory>
#include <string>

#include "call/registry.h"
#include "doors/door.h"
#include "doors/web_server.h"

namespace moshigw {

class MediaStream;

class MediaStreamDoor : public Door {
 public:
  MediaStreamDoor(CallRegistry& registry, std::shared_ptr<WebServer> web);
  ~MediaStreamDoor() override;

  const char* name() const override { return "media-stream"; }
  bool open(std::string& error) override;
  void tick(gint64 now_us) override;
  void hang_up_all() override;
  bool idle() const override { return streams_.empty(); }

  // A stream whose websocket has closed goes (later, in the main loop).
  void forget(MediaStream* stream);
  CallRegistry& registry() { return registry_; }

 private:
  CallRegistry& registry_;
  std::shared_ptr<WebServer> web_;
  std::map<MediaStream*, std::unique_ptr<MediaStream>> streams_;
};

}  // namespace moshigw
