// The AudioSocket door (--audiosocket-port): Asterisk's AudioSocket() connects over TCP, sends
// its call's UUID and then 20 ms frames of PCM; each connection is one call. Moshi answers in
// frames of the same kind and size, one for each frame the caller sends (the caller's pace), and
// the door hangs up with a hang-up frame, after an error frame when it refuses or fails
// (audiosocket_frames.h has the codes).
#pragma once

#include <gio/gio.h>

#include <map>
#include <memory>
#include <string>

#include "call/registry.h"
#include "doors/door.h"

namespace moshigw {

class AudioSocketConnection;

class AudioSocketDoor : public Door {
 public:
  explicit AudioSocketDoor(CallRegistry& registry);
  ~AudioSocketDoor() override;

  const char* name() const override { return "audiosocket"; }
  bool open(std::string& error) override;
  void tick(gint64 now_us) override;
  void hang_up_all() override;
  bool idle() const override { return connections_.empty(); }
  void close(std::function<void()> done) override;

  // A connection that has ended goes (later, in the main loop: it may be in a callback now).
  void forget(AudioSocketConnection* connection);
  CallRegistry& registry() { return registry_; }

 private:
  static gboolean on_incoming(GSocketService*, GSocketConnection* connection, GObject*,
                              gpointer self);

  CallRegistry& registry_;
  GSocketService* service_ = nullptr;
  std::map<AudioSocketConnection*, std::unique_ptr<AudioSocketConnection>> connections_;
};

}  // namespace moshigw
