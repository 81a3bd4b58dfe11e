#include "doors/media_stream.h"

#include <nlohmann/json.hpp>

#include "common/connections.h"
#include "doors/app_call.h"

namespace moshigw {

using nlohmann::json;

namespace {

constexpr guint64 kMaxMessage = 16 * 1024;  // a media message is ~400 bytes (on_error)
constexpr guint64 kMaxUnfinished = 4 * kMaxMessage;  // sent without finishing a message
constexpr size_t kMaxMedia = 1600;          // mu-law bytes of one media message: 200 ms
constexpr guint64 kMarkEvery = 50;          // frames of Moshi's voice between two marks: 1 s

// A string member of a JSON object, "" when absent or of another type.
std::string text(const json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// An integer member of a JSON object, `fallback` when absent or of another type (never throws:
// no exception may cross into libsoup's signal emission).
int64_t number(const json& object, const char* key, int64_t fallback) {
  if (!object.is_object()) return fallback;
  const auto it = object.find(key);
  return it != object.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

// A member that is itself an object, or null.
json member(const json& object, const char* key) {
  if (!object.is_object()) return json();
  const auto it = object.find(key);
  return it != object.end() && it->is_object() ? *it : json();
}

}  // namespace

// One websocket: the Twilio-style messages, its call, Moshi's voice back. Main loop only.
class MediaStream {
 public:
  MediaStream(WebsocketDoor<MediaStream>& door, SoupServerMessage* msg,
              SoupWebsocketConnection* ws, GSocket* socket);
  ~MediaStream();
  void tick(gint64 now_us);
  // Ends the call and closes the websocket with `code` and `why`.
  void end(const char* reason, gushort code, const char* why);

 private:
  static void on_message(SoupWebsocketConnection*, gint type, GBytes* message, gpointer self);
  static void on_closed(SoupWebsocketConnection*, gpointer self);
  static void on_error(SoupWebsocketConnection*, GError* error, gpointer self);
  void on_event(const json& message);
  void on_start(const json& start);
  void on_media(const json& media);
  void send_voice(size_t bytes);
  void send(const json& message);

  WebsocketDoor<MediaStream>& door_;
  SoupWebsocketConnection* ws_;
  GSocket* socket_;  // ws_'s, for client_reads
  std::string peer_, stream_sid_;
  const gint64 opened_us_;
  AppCall call_;
  guint64 frames_sent_ = 0;
  bool ended_ = false;
  gulong handlers_[3] = {0, 0, 0};
};

MediaStream::MediaStream(WebsocketDoor<MediaStream>& door, SoupServerMessage* msg,
                         SoupWebsocketConnection* ws, GSocket* socket)
    : door_(door),
      ws_(SOUP_WEBSOCKET_CONNECTION(g_object_ref(ws))),
      socket_(G_SOCKET(g_object_ref(socket))),
      peer_(address_text(soup_server_message_get_remote_address(msg))),
      opened_us_(g_get_monotonic_time()) {
  soup_websocket_connection_set_max_incoming_payload_size(ws_, kMaxMessage);
  handlers_[0] = g_signal_connect(ws_, "message", G_CALLBACK(on_message), this);
  handlers_[1] = g_signal_connect(ws_, "closed", G_CALLBACK(on_closed), this);
  handlers_[2] = g_signal_connect(ws_, "error", G_CALLBACK(on_error), this);
}

MediaStream::~MediaStream() {
  for (gulong handler : handlers_) g_signal_handler_disconnect(ws_, handler);
  if (call_.call) call_.call->stop("closed");
  if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close(ws_, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "shutdown");
  g_object_unref(ws_);
  g_object_unref(socket_);
}

void MediaStream::on_message(SoupWebsocketConnection*, gint type, GBytes* message,
                             gpointer self) {
  auto* stream = static_cast<MediaStream*>(self);
  if (stream->ended_) return;
  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    return stream->end("protocol-error", SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA,
                       "binary messages are not part of the protocol");
  gsize size = 0;
  const auto* data = static_cast<const char*>(g_bytes_get_data(message, &size));
  const json parsed = json::parse(data, data + size, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object())
    return stream->end("protocol-error", SOUP_WEBSOCKET_CLOSE_BAD_DATA, "not a JSON object");
  stream->on_event(parsed);
}

void MediaStream::on_event(const json& message) {
  const std::string event = text(message, "event");
  if (event == "start") return on_start(member(message, "start"));
  if (event == "media") {
    if (!call_.call)
      return end("protocol-error", SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "media before start");
    return on_media(member(message, "media"));
  }
  if (event == "stop") return end("remote-stop", SOUP_WEBSOCKET_CLOSE_NORMAL, "stopped");
  if (event == "connected" || event == "dtmf" || event == "mark") return;  // nothing to do
  g_message("media-stream %s: unknown event '%s'", peer_.c_str(), event.c_str());
  end("protocol-error", SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "unknown event");
}

// The format must be Twilio's (mu-law, 8 kHz, mono); the call is named by its callSid.
void MediaStream::on_start(const json& start) {
  if (call_.call)
    return end("protocol-error", SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "a second start");
  const json format = member(start, "mediaFormat");
  const bool mulaw = text(format, "encoding") == "audio/x-mulaw" &&
                     number(format, "sampleRate", 0) == 8000 && number(format, "channels", 1) == 1;
  if (!mulaw)
    return end("protocol-error", SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA,
               "mediaFormat must be audio/x-mulaw, 8000 Hz, mono");
  stream_sid_ = text(start, "streamSid");
  const std::string call_sid = text(start, "callSid");
  call_ = answer_app_call(door_.registry(), door_.name(), call_sid.empty() ? peer_ : call_sid,
                          peer_, mulaw_format(), [this](const char* reason) {
                            end(reason, SOUP_WEBSOCKET_CLOSE_SERVER_ERROR, "media error");
                          });
  if (call_.call) return;
  const WebsocketRefusal refusal = websocket_refusal(call_.refusal);
  end(call_.refusal, refusal.code, refusal.why);
}

void MediaStream::on_media(const json& media) {
  const std::string payload = text(media, "payload");
  if (payload.size() > kMaxMedia * 4 / 3 + 4)
    return end("protocol-error", SOUP_WEBSOCKET_CLOSE_TOO_BIG, "media over 200 ms");
  gsize size = 0;
  g_autofree guchar* audio = g_base64_decode(payload.c_str(), &size);
  if (size == 0) return;
  call_.media->push(audio, size);
  send_voice(size);
}

// As much of Moshi's voice as the caller just sent, if the client reads what it is sent.
void MediaStream::send_voice(size_t bytes) {
  if (!client_reads(socket_)) return;  // the call's own bound drops the oldest meanwhile
  const std::string voice = call_.media->pull(bytes);
  if (voice.empty()) return;
  g_autofree char* encoded =
      g_base64_encode(reinterpret_cast<const guchar*>(voice.data()), voice.size());
  send({{"event", "media"}, {"streamSid", stream_sid_}, {"media", {{"payload", encoded}}}});
  if (++frames_sent_ % kMarkEvery == 0)
    send({{"event", "mark"},
          {"streamSid", stream_sid_},
          {"mark", {{"name", "moshi-" + std::to_string(frames_sent_ / kMarkEvery) + "s"}}}});
}

void MediaStream::send(const json& message) {
  soup_websocket_connection_send_text(
      ws_, message.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
}

void MediaStream::tick(gint64 now_us) {
  if (ended_) return;
  const double timeout_s = door_.registry().config().rtp_timeout_s;
  if (call_.call) {
    if (const char* reason = call_.call->overdue(now_us))
      end(reason, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "no media");
  } else if (now_us - opened_us_ > static_cast<gint64>(timeout_s * G_USEC_PER_SEC)) {
    g_message("media-stream %s: no start in %.0f s", peer_.c_str(), timeout_s);
    end("input-timeout", SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "no start");
  }
}

void MediaStream::end(const char* reason, gushort code, const char* why) {
  if (ended_) return;
  ended_ = true;
  if (call_.call) call_.call->stop(reason);
  if (code != SOUP_WEBSOCKET_CLOSE_NORMAL)
    g_message("media-stream %s: closed with %d (%s)", peer_.c_str(), code, why);
  if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close(ws_, code, why);
}

// The client closed, or the close handshake ended, or libsoup dropped the connection.
void MediaStream::on_closed(SoupWebsocketConnection* ws, gpointer self) {
  auto* stream = static_cast<MediaStream*>(self);
  stream->end("remote-closed", soup_websocket_connection_get_close_code(ws), "closed");
  stream->door_.forget(stream);
}

// A message over kMaxMessage, or kMaxUnfinished bytes without a complete message
// (counted_input.h): libsoup 3.2 reports it here, then drops the connection without a close
// frame; the close written meanwhile tells the client why (1009).
void MediaStream::on_error(SoupWebsocketConnection*, GError* error, gpointer self) {
  if (message_too_big(error))
    static_cast<MediaStream*>(self)->end("protocol-error", SOUP_WEBSOCKET_CLOSE_TOO_BIG,
                                         "a message of 16 KiB or more");
}

MediaStreamDoor::MediaStreamDoor(CallRegistry& registry, std::shared_ptr<WebServer> web)
    : WebsocketDoor(registry, std::move(web), "/media-stream", kMaxUnfinished) {}

MediaStreamDoor::~MediaStreamDoor() = default;

}  // namespace moshigw
