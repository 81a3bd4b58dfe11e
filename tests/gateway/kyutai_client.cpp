#include "kyutai_client.h"

namespace gateway::kyutai::test {

namespace {
constexpr size_t kFrameSamples = kRate * 80 / 1000;  // Moshi's frame, the client's pace here
}

// One talk(): the connection, the codecs and what came back.
struct KyutaiClient::Session {
  SoupSession* session = soup_session_new();
  SoupWebsocketConnection* ws = nullptr;
  OggOpusEncoder encoder;
  OggOpusDecoder decoder;
  ClientResult result;
  const std::vector<int16_t>* speech = nullptr;
  size_t sent = 0;  // samples
  bool connect_done = false;
  bool sending_done = false;
  bool closed = false;
  ~Session() {
    if (ws) g_object_unref(ws);
    g_object_unref(session);
  }
};

KyutaiClient::KyutaiClient(std::string host, int port, std::string query)
    : url_("ws://" + host + ":" + std::to_string(port) + "/api/chat?" + query),
      context_(g_main_context_ref_thread_default()) {}

KyutaiClient::~KyutaiClient() {
  g_main_context_unref(context_);
}

// Iterates the context until `flag`, the close or the deadline; false unless `flag`.
bool KyutaiClient::wait(const bool& flag, gint64 deadline_us) {
  while (!flag && !s_->closed) {
    if (g_get_monotonic_time() > deadline_us) return false;
    g_main_context_iteration(context_, FALSE);
    g_usleep(1000);
  }
  return flag;
}

ClientResult KyutaiClient::talk(const std::vector<int16_t>& speech, int linger_ms,
                                int handshake_timeout_ms) {
  s_ = std::make_unique<Session>();
  s_->speech = &speech;
  g_autoptr(SoupMessage) msg = soup_message_new(SOUP_METHOD_GET, url_.c_str());
  soup_session_websocket_connect_async(s_->session, msg, nullptr, nullptr, G_PRIORITY_DEFAULT,
                                       nullptr, on_connected, this);
  const gint64 start = g_get_monotonic_time();
  wait(s_->connect_done, start + handshake_timeout_ms * 1000LL);
  if (s_->ws) {
    wait(s_->result.handshake, start + handshake_timeout_ms * 1000LL);
    if (s_->result.handshake) {
      g_autoptr(GSource) pace = g_timeout_source_new(80);
      g_source_set_callback(pace, on_frame, this, nullptr);
      g_source_attach(pace, context_);
      const double seconds = double(speech.size()) / kRate;
      wait(s_->sending_done, g_get_monotonic_time() + gint64((seconds + 5) * 1e6));
      g_source_destroy(pace);
      bool never = false;
      wait(never, g_get_monotonic_time() + linger_ms * 1000LL);
    }
    if (!s_->closed) {
      soup_websocket_connection_close(s_->ws, SOUP_WEBSOCKET_CLOSE_NO_STATUS, nullptr);
      wait(s_->closed, g_get_monotonic_time() + 2000000);
    }
  }
  try {
    const std::vector<int16_t> rest = s_->decoder.finish();
    s_->result.audio.insert(s_->result.audio.end(), rest.begin(), rest.end());
  } catch (const std::exception& e) {
    s_->result.errors.push_back(e.what());
  }
  ClientResult result = std::move(s_->result);
  s_.reset();
  return result;
}

void KyutaiClient::on_connected(GObject* source, GAsyncResult* res, gpointer data) {
  auto* self = static_cast<KyutaiClient*>(data);
  GError* error = nullptr;
  self->s_->ws = soup_session_websocket_connect_finish(SOUP_SESSION(source), res, &error);
  self->s_->connect_done = true;
  if (!self->s_->ws) {
    self->s_->result.errors.push_back(std::string("connect: ") + error->message);
    g_clear_error(&error);
    return;
  }
  self->s_->result.connected = true;
  soup_websocket_connection_set_max_incoming_payload_size(self->s_->ws, kMaxMessageBytes);
  g_signal_connect(self->s_->ws, "message", G_CALLBACK(on_message), self);
  g_signal_connect(self->s_->ws, "closed", G_CALLBACK(on_closed), self);
}

void KyutaiClient::on_message(SoupWebsocketConnection*, gint type, GBytes* message, gpointer data) {
  auto* self = static_cast<KyutaiClient*>(data);
  gsize size = 0;
  const auto* bytes = static_cast<const uint8_t*>(g_bytes_get_data(message, &size));
  if (type != SOUP_WEBSOCKET_DATA_BINARY) {
    self->s_->result.errors.push_back("a text frame: Kyutai's client would throw");
    return;
  }
  self->receive(bytes, size);
}

void KyutaiClient::receive(const uint8_t* data, size_t size) {
  ClientResult& r = s_->result;
  try {
    const Message m = parse(data, size);
    if (r.kinds.empty()) r.handshake = m.kind == Kind::handshake;
    r.kinds.push_back(m.kind);
    const std::string utf8(m.payload.begin(), m.payload.end());
    if (m.kind == Kind::audio) {
      s_->decoder.push_page(m.payload.data(), m.payload.size());
      const std::vector<int16_t> pcm = s_->decoder.take();
      r.audio.insert(r.audio.end(), pcm.begin(), pcm.end());
    } else if (m.kind == Kind::text) {
      r.text += utf8;
    } else if (m.kind == Kind::error) {
      r.errors.push_back("server: " + utf8);
    }
  } catch (const std::exception& e) {
    r.errors.push_back(e.what());
  }
}

void KyutaiClient::on_closed(SoupWebsocketConnection*, gpointer data) {
  auto* self = static_cast<KyutaiClient*>(data);
  self->s_->closed = true;
  self->s_->result.closed_by_server = !self->s_->sending_done;
}

gboolean KyutaiClient::on_frame(gpointer data) {
  auto* self = static_cast<KyutaiClient*>(data);
  Session& s = *self->s_;
  if (s.closed || s.sent >= s.speech->size()) {
    if (!s.sending_done) self->send_pages(s.encoder.finish());
    s.sending_done = true;
    return G_SOURCE_REMOVE;
  }
  const size_t n = std::min(kFrameSamples, s.speech->size() - s.sent);
  s.encoder.push(s.speech->data() + s.sent, n);
  s.sent += n;
  self->send_pages(s.encoder.take());
  return G_SOURCE_CONTINUE;
}

void KyutaiClient::send_pages(const std::vector<std::vector<uint8_t>>& pages) {
  if (s_->closed) return;
  for (const auto& page : pages) {
    const std::vector<uint8_t> msg = serialize(Kind::audio, page.data(), page.size());
    soup_websocket_connection_send_binary(s_->ws, msg.data(), msg.size());
  }
}

}  // namespace gateway::kyutai::test
