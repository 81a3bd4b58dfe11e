// The Kyutai-protocol test client against a stand-in server in the test: a libsoup websocket
// at /api/chat that sends the handshake, then echoes every audio page and answers the first
// with a text message. The client must get the handshake first, all its audio back decoded and
// about as long as it sent, and the text. So that the client can be trusted against the real
// door.
#include <gtest/gtest.h>

#include <cmath>

#include "kyutai_client.h"

namespace gateway::kyutai::test {
namespace {

struct EchoServer {
  SoupServer* server = nullptr;
  int port = 0;
  std::vector<SoupWebsocketConnection*> connections;
  std::string query;

  EchoServer() {
    server = soup_server_new(nullptr, nullptr);
    soup_server_add_websocket_handler(server, "/api/chat", nullptr, nullptr, on_socket, this,
                                      nullptr);
    GError* error = nullptr;
    soup_server_listen_local(server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
    g_assert_no_error(error);
    GSList* uris = soup_server_get_uris(server);
    port = g_uri_get_port(static_cast<GUri*>(uris->data));
    g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
  }
  ~EchoServer() {
    for (auto* c : connections) g_object_unref(c);
    g_object_unref(server);
  }

  static void on_socket(SoupServer*, SoupServerMessage* msg, const char*,
                        SoupWebsocketConnection* ws, gpointer data) {
    auto* self = static_cast<EchoServer*>(data);
    const char* q = g_uri_get_query(soup_server_message_get_uri(msg));
    self->query = q ? q : "";
    self->connections.push_back(static_cast<SoupWebsocketConnection*>(g_object_ref(ws)));
    g_signal_connect(ws, "message", G_CALLBACK(on_message), self);
    const std::vector<uint8_t> hello = handshake();
    soup_websocket_connection_send_binary(ws, hello.data(), hello.size());
  }

  static void on_message(SoupWebsocketConnection* ws, gint, GBytes* message, gpointer) {
    gsize size = 0;
    const auto* bytes = static_cast<const uint8_t*>(g_bytes_get_data(message, &size));
    const Message m = parse(bytes, size);
    if (m.kind != Kind::audio) return;
    soup_websocket_connection_send_binary(ws, bytes, size);
    if (!g_object_get_data(G_OBJECT(ws), "greeted")) {
      g_object_set_data(G_OBJECT(ws), "greeted", GINT_TO_POINTER(1));
      const std::vector<uint8_t> text = serialize(Kind::text, " Hello");
      soup_websocket_connection_send_binary(ws, text.data(), text.size());
    }
  }
};

std::vector<int16_t> speechlike(double seconds) {
  std::vector<int16_t> s(static_cast<size_t>(seconds * kRate));
  for (size_t i = 0; i < s.size(); ++i) {
    const double t = static_cast<double>(i) / kRate;
    s[i] = static_cast<int16_t>(5000 * std::sin(2 * M_PI * 160 * t) *
                                (0.6 + 0.4 * std::sin(2 * M_PI * 4 * t)));
  }
  return s;
}

TEST(KyutaiClient, TalksToAnEchoServer) {
  gst_init(nullptr, nullptr);
  GMainContext* context = g_main_context_new();
  g_main_context_push_thread_default(context);
  {
    EchoServer server;
    KyutaiClient client("127.0.0.1", server.port, "text_temperature=0.7&text_seed=5");
    const std::vector<int16_t> speech = speechlike(2.0);
    const gint64 start = g_get_monotonic_time();
    const ClientResult r = client.talk(speech, 500);
    const double elapsed = (g_get_monotonic_time() - start) / 1e6;
    EXPECT_TRUE(r.connected);
    EXPECT_TRUE(r.handshake);
    EXPECT_TRUE(r.errors.empty()) << r.errors.front();
    EXPECT_EQ(server.query, "text_temperature=0.7&text_seed=5");
    EXPECT_EQ(r.text, " Hello");
    EXPECT_GE(elapsed, 1.9) << "the audio is sent at real-time pace";
    EXPECT_NEAR(static_cast<double>(r.audio.size()), static_cast<double>(speech.size()),
                0.1 * kRate);
    double sum = 0;
    for (int16_t v : r.audio) sum += double(v) * v;
    EXPECT_GT(std::sqrt(sum / std::max<size_t>(1, r.audio.size())), 1000.0);
    EXPECT_FALSE(r.closed_by_server);
  }
  g_main_context_pop_thread_default(context);
  g_main_context_unref(context);
}

TEST(KyutaiClient, ReportsAServerThatIsNotThere) {
  gst_init(nullptr, nullptr);
  KyutaiClient client("127.0.0.1", 1, "");
  const ClientResult r = client.talk(speechlike(0.2), 0, 2000);
  EXPECT_FALSE(r.connected);
  EXPECT_FALSE(r.errors.empty());
}

}  // namespace
}  // namespace gateway::kyutai::test
