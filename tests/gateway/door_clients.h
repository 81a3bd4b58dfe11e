// Clients of the gateway's socket doors, written in the tests from the published protocol
// descriptions (not from the gateway's code): Asterisk's AudioSocket over a plain TCP socket, and
// a Twilio-style media stream over libsoup's websocket client.
#pragma once

#include <libsoup/soup.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gateway_harness.h"

namespace gwtest {

// As the SIP tests judge a call (test_gateway.cpp): Moshi stepped, the caller heard about as much
// of its voice as was produced (less what was in flight at the end), and not silence.
void expect_heard(const Heard& heard, double seconds, double produced, const std::string& log);

// What a caller heard: seconds of audio and its RMS (16-bit scale).
Heard heard_of(const std::vector<int16_t>& samples, int rate);

class AudioSocketClient {
 public:
  explicit AudioSocketClient(int port);
  ~AudioSocketClient();
  void send_frame(uint8_t kind, const std::string& payload);
  void send_raw(const std::string& bytes);
  // Reads what arrives for up to `seconds` (less once the gateway closes).
  void receive(double seconds);
  // The UUID, then `seconds` of the voice in 20 ms frames at real time, reading meanwhile.
  void talk(const std::string& uuid, double seconds, int rate = 8000);
  // A whole call: talk, then a hang-up frame, and what comes until the gateway closes.
  void call(const std::string& uuid, double seconds, int rate = 8000);
  void close_now();
  Heard heard(int rate = 8000) const;
  std::vector<std::pair<uint8_t, std::string>> frames;  // what the gateway sent
  bool closed = false;                                   // the gateway closed the connection

 private:
  void parse();
  int fd_ = -1;
  std::string buffer_;
};

// Sixteen bytes of a UUID, from a number.
std::string uuid_bytes(int n);

// A media stream's messages: its start (mu-law at 8 kHz unless `encoding` says otherwise), and
// the `i`th 20 ms media message of `voice` (16-bit samples at 8 kHz, repeated as needed).
std::string start_message(const std::string& call_sid,
                          const std::string& encoding = "audio/x-mulaw");
std::string media_message(const std::string& voice, int i);

class MediaStreamClient {
 public:
  MediaStreamClient() = default;
  ~MediaStreamClient();
  // Opens ws://127.0.0.1:port + `path` (with its query); false if refused (`status` says why).
  // With `tls`, wss:// with any certificate accepted (the tests' own, self-signed).
  bool connect(int port, const std::string& path, const std::string& bearer = "",
               bool tls = false);
  void send_text(const std::string& text);
  void send_binary(const std::string& bytes);
  void start(const std::string& call_sid, const std::string& encoding = "audio/x-mulaw");
  // `seconds` of the voice as 20 ms media messages at real time; then stop when `stop`.
  void talk(double seconds, bool stop = true);
  void pump(double seconds);  // runs the main context, for what the gateway sends
  bool wait_closed(double seconds);
  Heard heard() const;  // Moshi's voice, from the media messages received
  int status = 0, close_code = 0, media = 0, marks = 0;
  std::vector<std::string> binary;  // binary messages received (other protocols on the socket)
  bool closed = false;

 private:
  void listen();
  static void on_message(SoupWebsocketConnection*, gint type, GBytes* message, gpointer self);
  SoupSession* session_ = nullptr;
  SoupWebsocketConnection* ws_ = nullptr;
  std::vector<int16_t> voice_;
};

}  // namespace gwtest
