// A client of Kyutai's web-client protocol for the tests, written from its published
// description (gateway/doors/kyutai/protocol.h): it opens ws://HOST:PORT/api/chat?QUERY, waits
// for the server's handshake, sends Ogg Opus pages of the given 24 kHz signal at real-time pace
// (one 80 ms frame at a time, one page per message), and collects what comes back: audio
// (decoded), text, and the other kinds. It hangs up as Kyutai's client does, with a close
// frame without a status code (1005).
#pragma once

#include <libsoup/soup.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ogg_opus.h"
#include "protocol.h"

namespace gateway::kyutai::test {

struct ClientResult {
  bool connected = false;
  bool handshake = false;           // the first message was a handshake
  std::vector<int16_t> audio;       // Moshi's voice, decoded, 24 kHz mono
  std::string text;                 // the text messages, concatenated
  std::vector<Kind> kinds;          // every message's kind, in order
  std::vector<std::string> errors;  // error messages, protocol errors, transport errors
  bool closed_by_server = false;
};

class KyutaiClient {
 public:
  // Runs on the calling thread's default main context (g_main_context_get_thread_default()),
  // which a server in the same test may share.
  KyutaiClient(std::string host, int port, std::string query);
  ~KyutaiClient();
  KyutaiClient(const KyutaiClient&) = delete;
  KyutaiClient& operator=(const KyutaiClient&) = delete;

  // Connects, sends `speech` once the handshake came, keeps listening `linger_ms` more, then
  // hangs up. Gives up waiting for the handshake after `handshake_timeout_ms`.
  ClientResult talk(const std::vector<int16_t>& speech, int linger_ms = 1000,
                    int handshake_timeout_ms = 10000);

 private:
  struct Session;
  static void on_connected(GObject* source, GAsyncResult* result, gpointer self);
  static void on_message(SoupWebsocketConnection*, gint type, GBytes* message, gpointer self);
  static void on_closed(SoupWebsocketConnection*, gpointer self);
  static gboolean on_frame(gpointer self);
  void receive(const uint8_t* data, size_t size);
  void send_pages(const std::vector<std::vector<uint8_t>>& pages);
  bool wait(const bool& flag, gint64 deadline_us);

  std::string url_;
  GMainContext* context_ = nullptr;
  std::unique_ptr<Session> s_;
};

}  // namespace gateway::kyutai::test
