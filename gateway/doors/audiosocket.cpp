#include "doors/audiosocket.h"

#include "common/connections.h"
#include "doors/app_call.h"
#include "doors/audiosocket_frames.h"

namespace moshigw {

using namespace audiosocket;

namespace {

// Moshi's voice waiting for a client that does not read: past this, no more is taken from the
// call, whose own bound then drops the oldest (app_media.h).
constexpr size_t kMaxUnsent = 32 * 1024;

}  // namespace

// One TCP connection from Asterisk: frames in, the call, frames out. Main loop only.
class AudioSocketConnection {
 public:
  AudioSocketConnection(AudioSocketDoor& door, GSocketConnection* connection);
  ~AudioSocketConnection();
  void tick(gint64 now_us);
  // Ends the call and the connection: an error frame with `code` (0: none), then a hang-up.
  void end(const char* reason, uint8_t code);

 private:
  static gboolean on_readable(GSocket*, GIOCondition, gpointer self);
  static gboolean on_writable(GSocket*, GIOCondition, gpointer self);
  bool read_some();
  void on_frame(const Frame& frame);
  void on_audio(const Frame& frame);
  void send(const std::string& bytes);
  void flush();

  AudioSocketDoor& door_;
  GSocketConnection* connection_;
  GSocket* socket_;
  std::string peer_, uuid_;
  const gint64 accepted_us_;
  GSource* read_source_ = nullptr;
  GSource* write_source_ = nullptr;
  FrameReader reader_;
  std::string unsent_;
  uint8_t audio_kind_ = 0;  // the kind of the caller's first audio frame: the call's format
  AppCall call_;
  bool ended_ = false;
  bool destroying_ = false;  // the door is letting it go: nothing to tell the door
};

AudioSocketConnection::AudioSocketConnection(AudioSocketDoor& door, GSocketConnection* connection)
    : door_(door),
      connection_(G_SOCKET_CONNECTION(g_object_ref(connection))),
      socket_(g_socket_connection_get_socket(connection)),
      accepted_us_(g_get_monotonic_time()) {
  g_autoptr(GSocketAddress) remote = g_socket_get_remote_address(socket_, nullptr);
  peer_ = remote ? address_text(remote) : "unknown";
  g_socket_set_blocking(socket_, FALSE);
  read_source_ = g_socket_create_source(socket_, G_IO_IN, nullptr);
  g_source_set_callback(read_source_, G_SOURCE_FUNC(on_readable), this, nullptr);
  g_source_attach(read_source_, nullptr);
}

AudioSocketConnection::~AudioSocketConnection() {
  destroying_ = true;
  end("closed", 0);
  g_object_unref(connection_);
}

gboolean AudioSocketConnection::on_readable(GSocket*, GIOCondition, gpointer self) {
  auto* connection = static_cast<AudioSocketConnection*>(self);
  if (!connection->read_some()) return G_SOURCE_REMOVE;
  Frame frame;
  while (!connection->ended_ && connection->reader_.next(frame)) connection->on_frame(frame);
  if (!connection->ended_ && !connection->reader_.error().empty()) {
    g_message("audiosocket %s: %s", connection->peer_.c_str(), connection->reader_.error().c_str());
    connection->end("protocol-error", kProtocol);
  }
  return connection->ended_ ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

// False once the connection has ended (closed by the caller, or failed).
bool AudioSocketConnection::read_some() {
  char buffer[4096];
  g_autoptr(GError) error = nullptr;
  const gssize n = g_socket_receive(socket_, buffer, sizeof buffer, nullptr, &error);
  if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) return true;
  if (n <= 0) {
    // Closed without a hang-up frame: Asterisk may do that, and so does a crashed client.
    end(n == 0 ? "remote-closed" : "connection-error", 0);
    return false;
  }
  reader_.feed(buffer, n);
  return true;
}

void AudioSocketConnection::on_frame(const Frame& frame) {
  if (frame.kind == kUuid) {
    if (!uuid_.empty()) return end("protocol-error", kProtocol);
    uuid_ = uuid_text(frame.payload);
  } else if (audio_rate(frame.kind)) {
    on_audio(frame);
  } else if (frame.kind == kHangup) {
    end("remote-hangup", 0);
  } else if (frame.kind == kError) {
    g_message("audiosocket %s: the caller sent an error (%zu bytes)", peer_.c_str(),
              frame.payload.size());
    end("remote-error", 0);
  }
  // DTMF digits are read and dropped: Moshi does not take them.
}

// The caller's first audio frame starts the call in its format; each frame then brings one of
// Moshi's of the same size back, once Moshi has that much.
void AudioSocketConnection::on_audio(const Frame& frame) {
  if (uuid_.empty() || (audio_kind_ && frame.kind != audio_kind_)) {
    g_message("audiosocket %s: audio %s", peer_.c_str(),
              uuid_.empty() ? "before the UUID" : "changed its kind");
    return end("protocol-error", kProtocol);
  }
  if (!audio_kind_) {
    audio_kind_ = frame.kind;
    call_ = answer_app_call(door_.registry(), door_.name(), uuid_, peer_,
                            pcm_format(audio_rate(frame.kind)),
                            [this](const char* reason) { end(reason, kMediaError); });
    if (!call_.call) {
      const char* why = call_.refusal;
      return end(why, g_str_equal(why, "busy")       ? kBusy
                      : g_str_equal(why, "shutdown") ? kShutdown
                                                     : kMediaError);
    }
  }
  call_.media->push(frame.payload.data(), frame.payload.size());
  if (unsent_.size() > kMaxUnsent) return;
  const std::string voice = call_.media->pull(frame.payload.size());
  if (!voice.empty()) send(encode(audio_kind_, voice));
}

void AudioSocketConnection::send(const std::string& bytes) {
  unsent_ += bytes;
  flush();
}

void AudioSocketConnection::flush() {
  while (!unsent_.empty()) {
    g_autoptr(GError) error = nullptr;
    const gssize n = g_socket_send(socket_, unsent_.data(), unsent_.size(), nullptr, &error);
    if (n <= 0) break;
    unsent_.erase(0, n);
  }
  if (unsent_.empty() || write_source_ || ended_) return;
  write_source_ = g_socket_create_source(socket_, G_IO_OUT, nullptr);
  g_source_set_callback(write_source_, G_SOURCE_FUNC(on_writable), this, nullptr);
  g_source_attach(write_source_, nullptr);
}

gboolean AudioSocketConnection::on_writable(GSocket*, GIOCondition, gpointer self) {
  auto* connection = static_cast<AudioSocketConnection*>(self);
  g_source_unref(connection->write_source_);
  connection->write_source_ = nullptr;
  connection->flush();
  return G_SOURCE_REMOVE;
}

void AudioSocketConnection::tick(gint64 now_us) {
  if (ended_) return;
  const double timeout_s = door_.registry().config().rtp_timeout_s;
  if (call_.call) {
    if (const char* reason = call_.call->overdue(now_us)) end(reason, kTimeout);
  } else if (now_us - accepted_us_ > static_cast<gint64>(timeout_s * G_USEC_PER_SEC)) {
    g_message("audiosocket %s: no %s in %.0f s", peer_.c_str(), uuid_.empty() ? "UUID" : "audio",
              timeout_s);
    end("input-timeout", kTimeout);
  }
}

void AudioSocketConnection::end(const char* reason, uint8_t code) {
  if (ended_) return;
  if (call_.call) call_.call->stop(reason);
  if (code) unsent_ += encode(kError, std::string(1, static_cast<char>(code)));
  unsent_ += encode(kHangup);
  flush();  // once, as far as the socket takes it: a client that does not read gets a close
  ended_ = true;
  for (GSource** source : {&read_source_, &write_source_}) {
    if (!*source) continue;
    g_source_destroy(*source);
    g_source_unref(*source);
    *source = nullptr;
  }
  g_io_stream_close(G_IO_STREAM(connection_), nullptr, nullptr);
  if (!destroying_) door_.forget(this);
}

AudioSocketDoor::AudioSocketDoor(CallRegistry& registry) : registry_(registry) {}

AudioSocketDoor::~AudioSocketDoor() {
  connections_.clear();
  if (service_) {
    g_socket_service_stop(service_);
    g_socket_listener_close(G_SOCKET_LISTENER(service_));
    g_object_unref(service_);
  }
}

bool AudioSocketDoor::open(std::string& error) {
  const Config& config = registry_.config();
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string(config.listen_address.c_str());
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new(inet, config.audiosocket_port);
  service_ = g_socket_service_new();
  g_autoptr(GError) gerror = nullptr;
  if (!g_socket_listener_add_address(G_SOCKET_LISTENER(service_), address, G_SOCKET_TYPE_STREAM,
                                     G_SOCKET_PROTOCOL_TCP, nullptr, nullptr, &gerror)) {
    error = "cannot listen for AudioSocket on " + config.listen_address + ":" +
            std::to_string(config.audiosocket_port) + ": " + gerror->message;
    return false;
  }
  g_signal_connect(service_, "incoming", G_CALLBACK(on_incoming), this);
  g_socket_service_start(service_);
  g_message("listening for AudioSocket on %s:%d", config.listen_address.c_str(),
            config.audiosocket_port);
  return true;
}

// Past max-connections (calls and connections still saying who they are), a connection is
// closed at once: a flood of idle sockets cannot take the process's handles.
gboolean AudioSocketDoor::on_incoming(GSocketService*, GSocketConnection* connection, GObject*,
                                      gpointer self) {
  auto* door = static_cast<AudioSocketDoor*>(self);
  if (door->connections_.size() >= static_cast<size_t>(door->registry_.config().max_connections)) {
    g_io_stream_close(G_IO_STREAM(connection), nullptr, nullptr);
    return TRUE;
  }
  auto owned = std::make_unique<AudioSocketConnection>(*door, connection);
  AudioSocketConnection* key = owned.get();
  door->connections_[key] = std::move(owned);
  return TRUE;
}

void AudioSocketDoor::forget(AudioSocketConnection* connection) {
  run_later([this, connection] { connections_.erase(connection); });
}

void AudioSocketDoor::tick(gint64 now_us) {
  for (auto& [key, connection] : connections_) connection->tick(now_us);
}

void AudioSocketDoor::hang_up_all() {
  for (auto& [key, connection] : connections_) connection->end("shutdown", 0);
}

void AudioSocketDoor::close(std::function<void()> done) {
  if (service_) g_socket_service_stop(service_);
  done();
}

}  // namespace moshigw
