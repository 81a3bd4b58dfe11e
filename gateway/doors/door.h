// A front door: a protocol through which callers reach Moshi (SIP, AudioSocket, media streams).
// Each door turns its connections into Calls (call/call.h) of the one registry, so that every
// door shares the model, the batch scheduler, max-calls, the seed rule, transcripts, the summary
// line and the metrics (labelled with the door's name). Everything runs in the GLib main loop.
#pragma once

#include <glib.h>

#include <functional>
#include <string>

namespace moshigw {

// Runs `task` once from the main loop, after the callback now running: a connection that ends
// in its own callback is let go this way.
inline void run_later(std::function<void()> task) {
  g_idle_add_full(
      G_PRIORITY_DEFAULT_IDLE,
      [](gpointer data) -> gboolean {
        (*static_cast<std::function<void()>*>(data))();
        return G_SOURCE_REMOVE;
      },
      new std::function<void()>(std::move(task)),
      [](gpointer data) { delete static_cast<std::function<void()>*>(data); });
}

class Door {
 public:
  virtual ~Door() = default;
  // The metrics label and the summary line's door: "sip", "audiosocket", "media-stream".
  virtual const char* name() const = 0;
  // Binds the door's listener; false with `error` when it cannot.
  virtual bool open(std::string& error) = 0;
  // Every 250 ms: ends the calls whose caller went quiet, and what else the door times.
  virtual void tick(gint64 now_us) = 0;
  // Hangs up every call, the door's way (BYE, hang-up frame, close).
  virtual void hang_up_all() = 0;
  // No call or connection of the door is left (after hang_up_all: they have all gone).
  virtual bool idle() const = 0;
  // Closes the listener; `done` is called once the door has finished (at once, or later).
  virtual void close(std::function<void()> done) {
    done();
  }
};

}  // namespace moshigw
