// Kyutai's web-client protocol at /api/chat, against the real gateway with the tiny model, with
// the test client written from the protocol's description (kyutai_client.h): the handshake
// first, Moshi's voice and text back, the summary line and metrics; the bad inputs, each with its
// error message (kind 5) and close while another call goes on; one max-calls with the media
// stream door; and --static, which serves Kyutai's built client at /.
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>

#include "door_clients.h"
#include "gateway_harness.h"
#include "kyutai_client.h"
#include "raw_websocket.h"

using namespace gwtest;
namespace kyutai = gateway::kyutai;

namespace {

// The settings Kyutai's client sends by default (its Conversation.tsx), with a penalty.
const char* const kClientQuery =
    "text_temperature=0.7&text_topk=25&audio_temperature=0.8&audio_topk=250&pad_mult=0"
    "&text_seed=123&audio_seed=456&repetition_penalty_context=64&repetition_penalty=1.1"
    "&email=&image_url=";

std::vector<int16_t> speech(double seconds) {
  const std::string pcm = voice_pcm(kyutai::kRate);
  const auto* samples = reinterpret_cast<const int16_t*>(pcm.data());
  const size_t n = std::min(pcm.size() / 2, static_cast<size_t>(seconds * kyutai::kRate));
  return std::vector<int16_t>(samples, samples + n);
}

// Every test starts here: the client's Ogg Opus is GStreamer's.
GatewayOptions websocket_door(double rtp_timeout = 10) {
  gst_init(nullptr, nullptr);
  GatewayOptions options;
  options.websocket = true;
  options.rtp_timeout = rtp_timeout;
  return options;
}

kyutai::test::ClientResult talk(int port, const std::string& query, double seconds) {
  kyutai::test::KyutaiClient client("127.0.0.1", port, query);
  return client.talk(speech(seconds));
}

// A client refused at once: an error message (kind 5) that says `why`, no handshake, a close.
void expect_refused(const kyutai::test::ClientResult& r, const std::string& why) {
  EXPECT_TRUE(r.connected);
  EXPECT_FALSE(r.handshake);
  ASSERT_EQ(r.kinds.size(), 1u);
  EXPECT_EQ(r.kinds[0], kyutai::Kind::error);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_NE(r.errors[0].find(why), std::string::npos) << r.errors[0];
  EXPECT_TRUE(r.closed_by_server);
}

// A Kyutai call on its own thread and main context, as a second browser would be.
class Talker {
 public:
  Talker(int port, double seconds)
      : thread_([this, port, seconds] {
          GMainContext* context = g_main_context_new();
          g_main_context_push_thread_default(context);
          result = talk(port, kClientQuery, seconds);
          g_main_context_pop_thread_default(context);
          g_main_context_unref(context);
        }) {}
  ~Talker() { join(); }  // also when an assertion ends the test early
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  kyutai::test::ClientResult result;

 private:
  std::thread thread_;
};

}  // namespace

TEST(KyutaiChat, CallIsHeard) {
  TempDir dir;
  GatewayProcess gw(dir, websocket_door());
  ASSERT_TRUE(gw.started()) << gw.log();
  const auto r = talk(gw.ws_port, kClientQuery, 4);
  EXPECT_TRUE(r.handshake) << "the first message must be the handshake";
  EXPECT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_FALSE(r.closed_by_server);
  EXPECT_GT(std::count(r.kinds.begin(), r.kinds.end(), kyutai::Kind::text), 0) << "no text";
  ASSERT_TRUE(gw.wait_log("call 1 ended (remote-closed): door kyutai, caller 127.0.0.1:"))
      << gw.log();
  EXPECT_NE(gw.log().find("codec Opus/24000"), std::string::npos);
  expect_heard(heard_of(r.audio, kyutai::kRate), 4, gw.produced_seconds(1), gw.log());
  EXPECT_EQ(gw.metric("moshi_gateway_calls_total{door=\"kyutai\"}"), 1);
  EXPECT_EQ(gw.metric("moshi_gateway_calls_ended_total{door=\"kyutai\",reason=\"remote-closed\"}"),
            1);
  EXPECT_EQ(gw.metric("moshi_gateway_active_calls"), 0);
}

TEST(KyutaiChat, BadQueryIsRefused) {
  TempDir dir;
  GatewayProcess gw(dir, websocket_door());
  ASSERT_TRUE(gw.started()) << gw.log();
  expect_refused(talk(gw.ws_port, "text_temperature=hot", 1), "text_temperature=hot");
  expect_refused(talk(gw.ws_port, "audio_topk=-3", 1), "audio_topk=-3");
  expect_refused(talk(gw.ws_port, "text_seed=-1", 1), "text_seed=-1");
  EXPECT_TRUE(gw.wait_log("closed with 1008", 5, 3)) << gw.log();
  EXPECT_EQ(gw.metric("moshi_gateway_calls_total{door=\"kyutai\"}"), 0);
}

namespace {

// An oversized message over a socket written by hand, sent so that the gateway has read all of
// it when it drops the connection, and its answer cannot be lost to a reset: only the header of a
// 70000-byte frame; two fragments of 40000 bytes (libsoup bounds frames, not messages); or
// fragments of 32 KiB never finished, one byte past the door's bound on what a client sends
// without finishing a message. The answer: the handshake, an error message, a close 1009 with
// the reason.
enum class Oversized { header, fragments, unfinished };

void expect_oversized_answered(int port, Oversized how) {
  SCOPED_TRACE(static_cast<int>(how));
  RawWebsocket raw(port, std::string("/api/chat?") + kClientQuery);
  ASSERT_TRUE(raw.upgraded());
  if (how == Oversized::fragments) {
    ASSERT_TRUE(raw.send_frame(2, '\x01' + std::string(39999, 'x'), false));
    ASSERT_TRUE(raw.send_frame(0, std::string(40000, 'x')));
  } else if (how == Oversized::unfinished) {
    ASSERT_TRUE(raw.send_unfinished(2, 32 * 1024, kyutai::kMaxUnfinishedBytes + 1));
  } else {
    ASSERT_TRUE(raw.send_header(70000));
  }
  const std::vector<RawWebsocket::Frame> frames = raw.read_frames(5);
  const std::string why = "a message of 65536 bytes or more";
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].payload[0], '\0') << "the handshake comes first";
  EXPECT_EQ(frames[1].opcode, 2);
  EXPECT_EQ(frames[1].payload, "\x05" + why);
  EXPECT_EQ(frames[2].opcode, 8);
  EXPECT_EQ(frames[2].payload, "\x03\xf1" + why) << "1009 and the reason";
}

}  // namespace

// Each bad message gets an error message and a close that says why; a call in progress
// meanwhile is heard as if alone.
TEST(KyutaiChat, BadInputLeavesOtherCallsAlone) {
  TempDir dir;
  GatewayOptions options = websocket_door(2);
  options.max_calls = 8;  // each bad client is a call until its first bad message
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  Talker good(gw.ws_port, 6);
  ASSERT_TRUE(gw.wait_log("call 1 from kyutai", 10)) << gw.log();
  struct Case {
    const char* what;
    std::string binary, text;
    int code;
  };
  const Case cases[] = {
      {"unknown kind", std::string("\x42garbage"), "", 1008},
      {"empty message", std::string(), "", 1008},
      {"bad control", std::string("\x03\x09", 2), "", 1008},
      {"text frame", "", "hello", 1003},
      // libsoup drops the connection after the door's answer; the client may see the reset first.
      {"oversized", std::string(70000, '\x01'), "", 1009},
      {"silent", "", "", 1008},
  };
  std::vector<std::unique_ptr<MediaStreamClient>> bad;
  for (const Case& c : cases) {
    bad.push_back(std::make_unique<MediaStreamClient>());
    ASSERT_TRUE(bad.back()->connect(gw.ws_port, "/api/chat")) << c.what;
    if (!c.text.empty()) bad.back()->send_text(c.text);
    if (!c.binary.empty() || std::string(c.what) == "empty message")
      bad.back()->send_binary(c.binary);
  }
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(cases[i].what);
    EXPECT_TRUE(bad[i]->wait_closed(6));
    if (cases[i].code != 1009 || bad[i]->close_code != 0) {
      EXPECT_EQ(bad[i]->close_code, cases[i].code);
    }
    if (cases[i].code == 1009 && bad[i]->binary.size() < 2) continue;  // the reset came first
    ASSERT_FALSE(bad[i]->binary.empty());
    EXPECT_EQ(bad[i]->binary.front()[0], '\0') << "the handshake comes first";
    EXPECT_EQ(bad[i]->binary.back()[0], '\x05') << "no error message";
  }
  expect_oversized_answered(gw.ws_port, Oversized::header);
  expect_oversized_answered(gw.ws_port, Oversized::fragments);
  expect_oversized_answered(gw.ws_port, Oversized::unfinished);
  good.join();
  EXPECT_TRUE(good.result.handshake);
  EXPECT_TRUE(good.result.errors.empty()) << good.result.errors[0];
  ASSERT_TRUE(gw.wait_log("call 1 ended (remote-closed): door kyutai", 10)) << gw.log();
  expect_heard(heard_of(good.result.audio, kyutai::kRate), 6, gw.produced_seconds(1), gw.log());
  EXPECT_EQ(gw.metric("moshi_gateway_calls_ended_total{door=\"kyutai\",reason=\"protocol-error\"}"),
            8);
  EXPECT_EQ(gw.metric("moshi_gateway_calls_ended_total{door=\"kyutai\",reason=\"remote-closed\"}"),
            1);
  EXPECT_EQ(gw.metric("moshi_gateway_calls_ended_total{door=\"kyutai\",reason=\"input-timeout\"}"),
            1);
  if (HasFailure()) ADD_FAILURE() << gw.log();
}

// A client that never reads its socket (its receive window kept small) while it keeps sending
// its voice: Moshi's messages for it wait at most the door's bound (80, about 2 s), the oldest
// dropped and counted in the summary line, and a call beside it is heard as if alone.
TEST(KyutaiChat, ClientThatStopsReading) {
  TempDir dir;
  GatewayProcess gw(dir, websocket_door());
  ASSERT_TRUE(gw.started()) << gw.log();
  const std::vector<int16_t> voice = speech(8);  // made before the talker needs it too
  RawWebsocket stalled(gw.ws_port, std::string("/api/chat?") + kClientQuery, 4096);
  ASSERT_TRUE(stalled.upgraded());
  ASSERT_TRUE(gw.wait_log("call 1 from kyutai", 10)) << gw.log();
  Talker good(gw.ws_port, 6);
  kyutai::OggOpusEncoder encoder;
  const size_t frame = kyutai::kRate * 80 / 1000;
  const gint64 begin = g_get_monotonic_time();
  for (size_t i = 0; (i + 1) * frame <= voice.size(); ++i) {
    encoder.push(voice.data() + i * frame, frame);
    for (const std::vector<uint8_t>& page : encoder.take())
      ASSERT_TRUE(stalled.send_frame(2, '\x01' + std::string(page.begin(), page.end())));
    g_usleep(std::max<gint64>(0, begin + (i + 1) * 80000 - g_get_monotonic_time()));
  }
  stalled.close_now();
  good.join();
  EXPECT_TRUE(good.result.errors.empty()) << good.result.errors[0];
  ASSERT_TRUE(gw.wait_log("call 1 ended (remote-closed): door kyutai", 10)) << gw.log();
  ASSERT_TRUE(gw.wait_log("call 2 ended (remote-closed): door kyutai", 10)) << gw.log();
  // Its bound (2 s) and its socket (16 KiB sent, 4 KiB received: about 3 s of Opus).
  expect_bounded_backlog(gw, 1, 6.0);
  EXPECT_EQ(gw.dropped_seconds(2), 0.0) << gw.log();
  expect_heard(heard_of(good.result.audio, kyutai::kRate), 6, gw.produced_seconds(2), gw.log());
}

// One max-calls for every door: with a Kyutai call in progress, a media stream and a second
// Kyutai client are refused, each in its protocol's way.
TEST(KyutaiChat, MaxCallsCountsEveryDoor) {
  TempDir dir;
  GatewayOptions options = websocket_door();
  options.max_calls = 1;
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  Talker first(gw.ws_port, 4);
  ASSERT_TRUE(gw.wait_log("call 1 from kyutai", 10)) << gw.log();
  MediaStreamClient stream;
  ASSERT_TRUE(stream.connect(gw.ws_port, "/media-stream"));
  stream.start("CAbusy");
  EXPECT_TRUE(stream.wait_closed(5));
  expect_refused(talk(gw.ws_port, kClientQuery, 1), "busy: max-calls");
  first.join();
  EXPECT_TRUE(first.result.handshake);
  ASSERT_TRUE(gw.wait_log("call 1 ended (remote-closed): door kyutai", 10)) << gw.log();
  EXPECT_TRUE(gw.wait_log("closed with 1013 (busy: max-calls)", 5, 2)) << gw.log();
  EXPECT_EQ(gw.metric("moshi_gateway_calls_rejected_total{door=\"kyutai\",reason=\"busy\"}"), 1);
  EXPECT_EQ(gw.metric("moshi_gateway_calls_rejected_total{door=\"media-stream\",reason=\"busy\"}"),
            1);
}

namespace {

struct HttpReply {
  int status = 0;
  std::string head, body;
};

// One raw request (what a browser cannot send: dot segments, escaped slashes) on a fresh
// connection, read to its close.
HttpReply raw_http(int port, const std::string& method, const std::string& target) {
  const int fd = connect_tcp(port);
  const std::string request = method + " " + target +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  HttpReply reply;
  if (fd < 0 || send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) return reply;
  std::string all;
  char buffer[65536];
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, 5000) > 0) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    all.append(buffer, n);
  }
  close(fd);
  const size_t end = all.find("\r\n\r\n");
  if (all.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return reply;
  reply.status = std::stoi(all.substr(9, 3));
  reply.head = all.substr(0, end);
  reply.body = all.substr(end + 4);
  return reply;
}

void write_file(const std::string& path, const std::string& text) {
  ASSERT_TRUE(g_file_set_contents(path.c_str(), text.c_str(), text.size(), nullptr)) << path;
}

}  // namespace

TEST(KyutaiChat, StaticFiles) {
  TempDir dir;
  const std::string site = dir.path("site"), outside = dir.path("outside");
  ASSERT_EQ(g_mkdir_with_parents((site + "/assets").c_str(), 0755), 0);
  ASSERT_EQ(g_mkdir_with_parents(outside.c_str(), 0755), 0);
  write_file(site + "/index.html", "<html>moshi</html>");
  write_file(site + "/assets/app.js", "console.log(1);");
  write_file(site + "/assets/mimi.wasm", std::string("\0asm", 4));
  write_file(site + "/.secret", "hidden");
  write_file(outside + "/secret.txt", "outside");
  ASSERT_EQ(symlink(outside.c_str(), (site + "/escape").c_str()), 0);
  GatewayOptions options = websocket_door();
  options.extra = {"--static", site, "--auth-token", "s3cret"};
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  const HttpReply index = raw_http(gw.ws_port, "GET", "/");
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.head.find("Content-Type: text/html"), std::string::npos) << index.head;
  EXPECT_EQ(index.body, "<html>moshi</html>");
  const HttpReply js = raw_http(gw.ws_port, "GET", "/assets/app.js");
  EXPECT_EQ(js.body, "console.log(1);");
  EXPECT_NE(js.head.find("Content-Type: text/javascript"), std::string::npos) << js.head;
  const HttpReply wasm = raw_http(gw.ws_port, "GET", "/assets/mimi.wasm");
  EXPECT_NE(wasm.head.find("Content-Type: application/wasm"), std::string::npos) << wasm.head;
  const HttpReply head = raw_http(gw.ws_port, "HEAD", "/assets/app.js");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(raw_http(gw.ws_port, "POST", "/").status, 405);
  for (const char* refused : {"/undefined", "/../outside/secret.txt", "/%2e%2e/outside/secret.txt",
                              "/escape/secret.txt", "/.secret",
                              "/assets/../../outside/secret.txt"}) {
    SCOPED_TRACE(refused);
    const HttpReply r = raw_http(gw.ws_port, "GET", refused);
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.body.find("outside"), std::string::npos);
  }
  // The websocket paths keep their token; the files are public.
  MediaStreamClient stranger;
  EXPECT_FALSE(stranger.connect(gw.ws_port, "/api/chat"));
  EXPECT_EQ(stranger.status, 401);
}
