#include "doors/kyutai_chat.h"

#include "common/connections.h"
#include "doors/app_call.h"
#include "doors/kyutai_chat_media.h"
#include "ogg_opus.h"
#include "protocol.h"

namespace moshigw {

namespace kyutai = gateway::kyutai;

namespace {

// Why a message over the bound is refused (close 1009), whether libsoup saw it in one frame
// (on_error) or assembled it from fragments each under its bound (on_message).
std::string too_big() {
  return "a message of " + std::to_string(kyutai::kMaxMessageBytes) + " bytes or more";
}

}  // namespace

// One websocket of /api/chat: its call and the messages both ways. Main loop only.
class KyutaiChat {
 public:
  KyutaiChat(WebsocketDoor<KyutaiChat>& door, SoupServerMessage* msg,
             SoupWebsocketConnection* ws, GSocket* socket);
  ~KyutaiChat();
  void tick(gint64 now_us);
  // Ends the call and closes the websocket with `code` and `why`.
  void end(const char* reason, gushort code, const char* why);

 private:
  void answer(const char* query);
  static void on_message(SoupWebsocketConnection*, gint type, GBytes* message, gpointer self);
  static void on_closed(SoupWebsocketConnection*, gpointer self);
  static void on_error(SoupWebsocketConnection*, GError* error, gpointer self);
  // An error message (kind 5) with `why`, then the close.
  void refuse(const char* reason, gushort code, const std::string& why);
  void send(const std::vector<uint8_t>& message);
  void flush();

  WebsocketDoor<KyutaiChat>& door_;
  SoupWebsocketConnection* ws_;
  GSocket* socket_;  // ws_'s, for client_reads
  const std::string peer_;
  std::unique_ptr<Call> call_;
  KyutaiChatMedia* media_ = nullptr;  // the call's
  bool ended_ = false;
  gulong handlers_[3] = {0, 0, 0};
};

KyutaiChat::KyutaiChat(WebsocketDoor<KyutaiChat>& door, SoupServerMessage* msg,
                       SoupWebsocketConnection* ws, GSocket* socket)
    : door_(door),
      ws_(SOUP_WEBSOCKET_CONNECTION(g_object_ref(ws))),
      socket_(G_SOCKET(g_object_ref(socket))),
      peer_(address_text(soup_server_message_get_remote_address(msg))) {
  // libsoup drops a larger message's connection, after an "error" (on_error answers it).
  soup_websocket_connection_set_max_incoming_payload_size(ws_, kyutai::kMaxMessageBytes);
  handlers_[0] = g_signal_connect(ws_, "message", G_CALLBACK(on_message), this);
  handlers_[1] = g_signal_connect(ws_, "closed", G_CALLBACK(on_closed), this);
  handlers_[2] = g_signal_connect(ws_, "error", G_CALLBACK(on_error), this);
  answer(g_uri_get_query(soup_server_message_get_uri(msg)));
}

KyutaiChat::~KyutaiChat() {
  for (gulong handler : handlers_) g_signal_handler_disconnect(ws_, handler);
  if (call_) call_->stop("closed");
  if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close(ws_, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "shutdown");
  g_object_unref(ws_);
  g_object_unref(socket_);
}

// The session's settings, then the call, then the handshake: the client records and sends
// nothing before it.
void KyutaiChat::answer(const char* query) {
  kyutai::SessionParams params;
  try {
    params = kyutai::parse_session(kyutai::decode_query(query ? query : ""));
  } catch (const kyutai::ProtocolError& e) {
    return refuse("bad-query", SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, e.what());
  }
  auto media = std::make_unique<KyutaiChatMedia>(params);
  KyutaiChatMedia* end_of_call = media.get();
  AnsweredCall answer = answer_call(door_.registry(), door_.name(), peer_, peer_,
                                    std::move(media), [this](const char* reason) {
                                      end(reason, SOUP_WEBSOCKET_CLOSE_SERVER_ERROR,
                                          "media error");
                                    });
  if (!answer.call) {
    const WebsocketRefusal refusal = websocket_refusal(answer.refusal);
    return refuse(answer.refusal, refusal.code, refusal.why);
  }
  call_ = std::move(answer.call);
  media_ = end_of_call;
  send(kyutai::handshake());
}

void KyutaiChat::on_message(SoupWebsocketConnection*, gint type, GBytes* message,
                            gpointer self) {
  auto* chat = static_cast<KyutaiChat*>(self);
  if (chat->ended_) return;
  if (type != SOUP_WEBSOCKET_DATA_BINARY)
    return chat->refuse("protocol-error", SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA,
                        "every message of this protocol is binary");
  gsize size = 0;
  const auto* data = static_cast<const uint8_t*>(g_bytes_get_data(message, &size));
  if (size >= kyutai::kMaxMessageBytes)
    return chat->refuse("protocol-error", SOUP_WEBSOCKET_CLOSE_TOO_BIG, too_big());
  try {
    const kyutai::Message m = kyutai::parse(data, size);
    // The other kinds a client may send (ping, control, metadata, text) change nothing here.
    if (m.kind == kyutai::Kind::audio) chat->media_->push(m.payload.data(), m.payload.size());
  } catch (const kyutai::ProtocolError& e) {
    return chat->refuse("protocol-error", SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, e.what());
  }
  chat->flush();
}

void KyutaiChat::refuse(const char* reason, gushort code, const std::string& why) {
  if (ended_) return;
  g_message("kyutai %s: %s", peer_.c_str(), why.c_str());
  send(kyutai::serialize(kyutai::Kind::error, why));
  end(reason, code, why.c_str());
}

void KyutaiChat::send(const std::vector<uint8_t>& message) {
  if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_binary(ws_, message.data(), message.size());
}

// What Moshi has said since, if the client reads what it is sent; meanwhile the media end's
// bound drops the oldest.
void KyutaiChat::flush() {
  if (!media_ || ended_ || !client_reads(socket_)) return;
  for (const std::vector<uint8_t>& message : media_->take()) send(message);
}

void KyutaiChat::tick(gint64 now_us) {
  if (ended_) return;
  flush();
  if (const char* reason = call_ ? call_->overdue(now_us) : nullptr)
    refuse(reason, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "no audio from the client");
}

void KyutaiChat::end(const char* reason, gushort code, const char* why) {
  if (ended_) return;
  ended_ = true;
  if (call_) call_->stop(reason);
  // A close without a status (1005) is how Kyutai's client hangs up.
  if (code != SOUP_WEBSOCKET_CLOSE_NORMAL && code != SOUP_WEBSOCKET_CLOSE_NO_STATUS)
    g_message("kyutai %s: closed with %d (%s)", peer_.c_str(), code, why);
  if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close(ws_, code, why);
}

// The client closed, or the close handshake ended, or libsoup dropped the connection.
void KyutaiChat::on_closed(SoupWebsocketConnection* ws, gpointer self) {
  auto* chat = static_cast<KyutaiChat*>(self);
  chat->end("remote-closed", soup_websocket_connection_get_close_code(ws), "closed");
  chat->door_.forget(chat);
}

// A message over the bound, in one frame or in fragments never finished (counted_input.h):
// libsoup 3.2 reports it here, then drops the connection without a close frame as soon as this
// returns. Meanwhile the client gets what every bad message gets: an error message, then a close
// (1009 and a reason), both written at once if its socket takes them (test_kyutai_chat.cpp,
// "oversized" and "unfinished").
void KyutaiChat::on_error(SoupWebsocketConnection*, GError* error, gpointer self) {
  if (message_too_big(error))
    static_cast<KyutaiChat*>(self)->refuse("protocol-error", SOUP_WEBSOCKET_CLOSE_TOO_BIG,
                                           too_big());
}

KyutaiChatDoor::KyutaiChatDoor(CallRegistry& registry, std::shared_ptr<WebServer> web)
    : WebsocketDoor(registry, std::move(web), "/api/chat", kyutai::kMaxUnfinishedBytes) {}

KyutaiChatDoor::~KyutaiChatDoor() = default;

bool KyutaiChatDoor::open(std::string& error) {
  const std::vector<std::string> missing = kyutai::missing_ogg_opus_elements();
  if (!missing.empty()) {
    error = "ws-port: Kyutai's web-client door needs the GStreamer element(s)";
    for (const std::string& name : missing) error += " " + name;
    error +=
        " (opusparse is in Debian's gstreamer1.0-plugins-bad, the others in "
        "gstreamer1.0-plugins-base)";
    return false;
  }
  return WebsocketDoor::open(error);
}

}  // namespace moshigw
