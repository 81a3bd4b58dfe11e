#include "door_clients.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace gwtest {

namespace {

// G.711 mu-law, from its definition: bias 132, 8 segments, bits inverted.
uint8_t mulaw_encode(int16_t sample) {
  int value = sample, sign = 0;
  if (value < 0) value = -value, sign = 0x80;
  value = std::min(value, 32635) + 132;
  int exponent = 7;
  for (int mask = 0x4000; !(value & mask) && exponent > 0; mask >>= 1) exponent--;
  const int mantissa = (value >> (exponent + 3)) & 0x0f;
  return static_cast<uint8_t>(~(sign | (exponent << 4) | mantissa));
}

int16_t mulaw_decode(uint8_t byte) {
  byte = ~byte;
  const int exponent = (byte >> 4) & 7, mantissa = byte & 0x0f;
  const int value = (((mantissa << 3) + 132) << exponent) - 132;
  return static_cast<int16_t>(byte & 0x80 ? -value : value);
}

// The AudioSocket kind of signed 16-bit PCM at `rate` (docs.asterisk.org, "AudioSocket": 0x10
// 8 kHz, 0x11 12, 0x12 16, 0x13 24, 0x14 32, 0x15 44.1, 0x16 48 kHz).
uint8_t audiosocket_kind(int rate) {
  const int rates[] = {8000, 12000, 16000, 24000, 32000, 44100, 48000};
  for (uint8_t i = 0; i < 7; ++i)
    if (rates[i] == rate) return 0x10 + i;
  ADD_FAILURE() << "no AudioSocket kind for " << rate << " Hz";
  return 0x10;
}

// Sleeps until `deadline_us`, running the main context meanwhile.
void run_until(gint64 deadline_us) {
  while (g_get_monotonic_time() < deadline_us) {
    while (g_main_context_iteration(nullptr, FALSE)) {
    }
    g_usleep(std::min<gint64>(2000, std::max<gint64>(0, deadline_us - g_get_monotonic_time())));
  }
}

}  // namespace

void expect_heard(const Heard& heard, double seconds, double produced, const std::string& log) {
  EXPECT_GT(produced, 0.5) << "the gateway barely stepped";
  EXPECT_GT(heard.seconds, std::min(seconds - 1.2, produced - 0.6)) << log;
  EXPECT_LT(heard.seconds, seconds + 0.5);
  EXPECT_GT(heard.rms, 100.0) << "the caller heard silence";
}

Heard heard_of(const std::vector<int16_t>& samples, int rate) {
  Heard heard;
  double sum = 0;
  for (int16_t s : samples) sum += static_cast<double>(s) * s;
  heard.seconds = static_cast<double>(samples.size()) / rate;
  heard.rms = samples.empty() ? 0 : std::sqrt(sum / samples.size());
  return heard;
}

AudioSocketClient::AudioSocketClient(int port) : fd_(connect_tcp(port)) {}

AudioSocketClient::~AudioSocketClient() {
  close_now();
}

void AudioSocketClient::close_now() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void AudioSocketClient::send_raw(const std::string& bytes) {
  if (fd_ >= 0) (void)!send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
}

void AudioSocketClient::send_frame(uint8_t kind, const std::string& payload) {
  std::string frame = {static_cast<char>(kind), static_cast<char>(payload.size() >> 8),
                       static_cast<char>(payload.size() & 0xff)};
  send_raw(frame + payload);
}

void AudioSocketClient::receive(double seconds) {
  const gint64 end = g_get_monotonic_time() + static_cast<gint64>(seconds * 1e6);
  while (!closed && fd_ >= 0) {
    const gint64 left = (end - g_get_monotonic_time()) / 1000;
    pollfd p{fd_, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buffer[8192];
    const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) closed = true;
    if (n > 0) buffer_.append(buffer, n);
    parse();
  }
}

void AudioSocketClient::parse() {
  while (buffer_.size() >= 3) {
    const size_t length = (static_cast<uint8_t>(buffer_[1]) << 8) | static_cast<uint8_t>(buffer_[2]);
    if (buffer_.size() < 3 + length) return;
    frames.emplace_back(static_cast<uint8_t>(buffer_[0]), buffer_.substr(3, length));
    buffer_.erase(0, 3 + length);
  }
}

void AudioSocketClient::talk(const std::string& uuid, double seconds, int rate) {
  send_frame(0x01, uuid);
  const std::string voice = voice_pcm(rate);
  const size_t frame = rate / 50 * 2;
  const gint64 begin = g_get_monotonic_time();
  for (int i = 0; i < static_cast<int>(seconds * 50) && !closed; ++i) {
    const size_t at = (i * frame) % (voice.size() - frame);
    send_frame(audiosocket_kind(rate), voice.substr(at, frame));
    const gint64 next = begin + (i + 1) * 20000;
    receive(std::max<gint64>(0, next - g_get_monotonic_time()) / 1e6);
    if (g_get_monotonic_time() < next) g_usleep(next - g_get_monotonic_time());
  }
}

void AudioSocketClient::call(const std::string& uuid, double seconds, int rate) {
  talk(uuid, seconds, rate);
  send_frame(0x00, "");
  receive(5);
}

Heard AudioSocketClient::heard(int rate) const {
  std::vector<int16_t> samples;
  for (const auto& [kind, payload] : frames) {
    if (kind < 0x10 || kind > 0x16) continue;
    const size_t n = payload.size() / 2;
    const size_t at = samples.size();
    samples.resize(at + n);
    std::memcpy(samples.data() + at, payload.data(), n * 2);
  }
  return heard_of(samples, rate);
}

std::string uuid_bytes(int n) {
  std::string bytes(16, '\0');
  for (int i = 0; i < 16; ++i) bytes[i] = static_cast<char>(i == 15 ? n : 0x10 + i);
  return bytes;
}

MediaStreamClient::~MediaStreamClient() {
  if (ws_) {
    if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close(ws_, SOUP_WEBSOCKET_CLOSE_NORMAL, nullptr);
    g_signal_handlers_disconnect_by_data(ws_, this);
    g_object_unref(ws_);
  }
  if (session_) g_object_unref(session_);
}

bool MediaStreamClient::connect(int port, const std::string& path, const std::string& bearer,
                                bool tls) {
  session_ = soup_session_new();
  const std::string uri =
      std::string(tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(port) + path;
  SoupMessage* msg = soup_message_new("GET", uri.c_str());
  g_signal_connect(msg, "accept-certificate",
                   G_CALLBACK(+[](SoupMessage*, GTlsCertificate*, GTlsCertificateFlags) {
                     return TRUE;
                   }),
                   nullptr);
  if (!bearer.empty())
    soup_message_headers_append(soup_message_get_request_headers(msg), "Authorization",
                                ("Bearer " + bearer).c_str());
  struct Wait {
    MediaStreamClient* self;
    bool done = false;
  } wait{this};
  // The handlers are connected in the callback: what the server sends first (Kyutai's
  // handshake) may come in the same iteration of the main context.
  soup_session_websocket_connect_async(
      session_, msg, nullptr, nullptr, G_PRIORITY_DEFAULT, nullptr,
      [](GObject* session, GAsyncResult* result, gpointer data) {
        auto* w = static_cast<Wait*>(data);
        w->self->ws_ = soup_session_websocket_connect_finish(SOUP_SESSION(session), result, nullptr);
        w->done = true;
        if (w->self->ws_) w->self->listen();
      },
      &wait);
  wait_until([&] { return wait.done; }, 10);
  status = soup_message_get_status(msg);
  g_object_unref(msg);
  return ws_ != nullptr;
}

void MediaStreamClient::listen() {
  g_signal_connect(ws_, "message", G_CALLBACK(on_message), this);
  g_signal_connect(ws_, "closed", G_CALLBACK(+[](SoupWebsocketConnection* ws, gpointer self) {
                     auto* client = static_cast<MediaStreamClient*>(self);
                     client->closed = true;
                     client->close_code = soup_websocket_connection_get_close_code(ws);
                   }),
                   this);
}

void MediaStreamClient::on_message(SoupWebsocketConnection*, gint type, GBytes* message,
                                   gpointer self) {
  auto* client = static_cast<MediaStreamClient*>(self);
  gsize size = 0;
  const auto* data = static_cast<const char*>(g_bytes_get_data(message, &size));
  const std::string text(data, size);
  if (type == SOUP_WEBSOCKET_DATA_BINARY) return client->binary.push_back(text);
  if (text.find("\"event\":\"mark\"") != std::string::npos) client->marks++;
  const std::string key = "\"payload\":\"";
  const size_t at = text.find(key);
  if (text.find("\"event\":\"media\"") == std::string::npos || at == std::string::npos) return;
  const std::string payload = text.substr(at + key.size(), text.find('"', at + key.size()) - at - key.size());
  gsize n = 0;
  g_autofree guchar* audio = g_base64_decode(payload.c_str(), &n);
  for (gsize i = 0; i < n; ++i) client->voice_.push_back(mulaw_decode(audio[i]));
  client->media++;
}

void MediaStreamClient::send_text(const std::string& text) {
  if (ws_ && soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_text(ws_, text.c_str());
}

void MediaStreamClient::send_binary(const std::string& bytes) {
  if (ws_ && soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_binary(ws_, bytes.data(), bytes.size());
}

std::string start_message(const std::string& call_sid, const std::string& encoding) {
  return R"({"event":"start","sequenceNumber":"1","streamSid":"MZtest","start":{)"
         R"("streamSid":"MZtest","callSid":")" + call_sid +
         R"(","tracks":["inbound"],"customParameters":{"who":"test"},)"
         R"("mediaFormat":{"encoding":")" + encoding + R"(","sampleRate":8000,"channels":1}}})";
}

std::string media_message(const std::string& voice, int i) {
  const size_t samples = voice.size() / 2;
  guchar frame[160];
  for (int k = 0; k < 160; ++k) {
    int16_t s;
    std::memcpy(&s, voice.data() + 2 * ((i * 160 + k) % samples), 2);
    frame[k] = mulaw_encode(s);
  }
  g_autofree char* payload = g_base64_encode(frame, sizeof frame);
  return R"({"event":"media","streamSid":"MZtest","media":{"track":"inbound","chunk":")" +
         std::to_string(i + 1) + R"(","payload":")" + payload + "\"}}";
}

void MediaStreamClient::start(const std::string& call_sid, const std::string& encoding) {
  send_text(R"({"event":"connected","protocol":"Call","version":"1.0.0"})");
  send_text(start_message(call_sid, encoding));
}

void MediaStreamClient::talk(double seconds, bool stop) {
  const std::string voice = voice_pcm(8000);
  const gint64 begin = g_get_monotonic_time();
  for (int i = 0; i < static_cast<int>(seconds * 50) && !closed; ++i) {
    send_text(media_message(voice, i));
    run_until(begin + (i + 1) * 20000);
  }
  if (stop) send_text(R"({"event":"stop","streamSid":"MZtest","stop":{"callSid":"x"}})");
}

void MediaStreamClient::pump(double seconds) {
  run_until(g_get_monotonic_time() + static_cast<gint64>(seconds * 1e6));
}

bool MediaStreamClient::wait_closed(double seconds) {
  return wait_until([&] { return closed; }, seconds);
}

Heard MediaStreamClient::heard() const {
  return heard_of(voice_, 8000);
}

}  // namespace gwtest
