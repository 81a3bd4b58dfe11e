// moshi-gateway against a real SIP phone (baresip) and a hand-written SIP peer, on loopback,
// with the tiny model. Each test starts its own gateway.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gateway_harness.h"

using namespace gwtest;

namespace {

const CodecCase kPcmu{"PCMU/8000", "PCMU", 8000, 1};
const CodecCase kPcma{"PCMA/8000", "PCMA", 8000, 1};
const CodecCase kG722{"G722/8000", "G722/16000/1", 16000, 1};
const CodecCase kOpus{"opus/48000", "opus", 48000, 2};

bool have_baresip() {
  g_autofree char* path = g_find_program_in_path("baresip");
  return path != nullptr;
}

#define REQUIRE_BARESIP() \
  if (!have_baresip()) GTEST_SKIP() << "baresip is not installed (scripts/setup.sh installs it)"

// A call of `seconds` that the caller ends with BYE: answered, and Moshi heard for about as long
// as the gateway produced audio. What it produced is judged by the steps the gateway counted
// (its summary line), not by the wall clock: on a busy machine, or under the sanitizers, the
// tiny model may step slower than real time (and audio that comes in a burst after a stall is
// dropped rather than queued, GATEWAY.md), and the caller then hears less, rightly.
void expect_heard(const Caller& caller, double seconds, double produced) {
  const Heard heard = caller.heard();
  EXPECT_NE(caller.log().find("Call established"), std::string::npos) << caller.log();
  // The gateway stepped at all: half a second of Moshi's voice is what any working pipeline
  // gives in a call of seconds, even under the sanitizers with three calls batched (1.44 s of 5
  // was seen there); a stalled one gives none.
  EXPECT_GT(produced, 0.5) << "the gateway barely stepped";
  // The call lasts `seconds` from the dial; Moshi's first packets need ~0.3 s, and the last
  // 0.6 s of what was produced may still be in flight when the caller hangs up.
  EXPECT_GT(heard.seconds, std::min(seconds - 1.2, produced - 0.6)) << caller.log();
  EXPECT_LT(heard.seconds, seconds + 0.5);
  EXPECT_GT(heard.rms, 100.0) << "the caller heard silence";
}

}  // namespace

// Each codec in turn on a gateway with one RTP port pair: every call must free it for the next.
// Settings that would break every call stop the gateway at start, with a message naming them.
TEST(Gateway, BadSettingsAreRefusedAtStart) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--listen", "localhost"}, "invalid value 'localhost' for 'listen'"},
      {{"--weights", "int9"}, "must be float32, bfloat16, int8, int4 or auto, not 'int9'"},
      {{"--transcript-dir", "/nonexistent/gst-moshi"}, "is not a directory"},
      {{"--stt-model", "models/stt-tiny"}, "stt-model needs transcript-dir"},
  };
  for (const auto& [extra, message] : cases) {
    SCOPED_TRACE(extra[0] + " " + extra[1]);
    TempDir dir;
    GatewayOptions options;
    options.extra = extra;
    GatewayProcess gw(dir, options);
    ASSERT_TRUE(gw.process->wait(60)) << gw.process->log();
    EXPECT_NE(gw.process->exit_status(), 0);
    EXPECT_NE(gw.process->log().find(message), std::string::npos) << gw.process->log();
  }
  // A configuration file whose group is misspelled would be ignored whole.
  TempDir dir;
  std::ofstream(dir.path("gateway.ini")) << "[Gateway]\nmax-calls = 2\n";
  GatewayOptions options;
  options.extra = {"--config", dir.path("gateway.ini")};
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.process->wait(60)) << gw.process->log();
  EXPECT_NE(gw.process->exit_status(), 0);
  EXPECT_NE(gw.process->log().find("no [gateway] group"), std::string::npos) << gw.process->log();
}

// A door that cannot open after the SIP door did (its port is taken) stops the gateway with its
// message and exit status 1: the SIP stack is shut down before it is destroyed, where Sofia
// would abort on destroying a stack still running.
TEST(Gateway, BadSettingsAfterSipOpenedStopItCleanly) {
  const int port = free_ports(1);
  const int taken = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(taken, 1), 0);
  TempDir dir;
  GatewayOptions options;
  options.extra = {"--audiosocket-port", std::to_string(port)};
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.process->wait(60)) << gw.process->log();
  close(taken);
  EXPECT_EQ(gw.process->exit_status(), 1) << gw.process->log();
  EXPECT_NE(
      gw.process->log().find("cannot listen for AudioSocket on 127.0.0.1:" + std::to_string(port)),
      std::string::npos)
      << gw.process->log();
  EXPECT_NE(gw.process->log().find("listening for SIP"), std::string::npos) << gw.process->log();
}

TEST(Gateway, EachCodecAnsweredHeardAndFreed) {
  REQUIRE_BARESIP();
  TempDir dir;
  GatewayOptions options;
  options.rtp_pairs = 1;
  options.extra = {"--transcript-dir", dir.path("")};
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  const std::pair<CodecCase, const char*> cases[] = {
      {kPcmu, ""}, {kPcma, "tcp"}, {kG722, ""}, {kOpus, ""}};
  int n = 0;
  for (const auto& [codec, transport] : cases) {
    SCOPED_TRACE(codec.gateway);
    ++n;
    Caller caller(codec, gw.uri(transport), 3);
    ASSERT_TRUE(caller.finish(25)) << caller.log();
    ASSERT_TRUE(gw.wait_log("call " + std::to_string(n) + " ended (remote-bye)")) << gw.log();
    expect_heard(caller, 3, gw.produced_seconds(n));
    EXPECT_NE(gw.log().find("codec " + std::string(codec.gateway)), std::string::npos);
    EXPECT_EQ(gw.metric("moshi_gateway_active_calls"), 0);
    EXPECT_TRUE(udp_port_free(gw.rtp_min)) << "the call's RTP port is still bound";
    EXPECT_TRUE(udp_port_free(gw.rtp_min + 1)) << "the call's RTCP port is still bound";
  }
  EXPECT_EQ(gw.metric("moshi_gateway_calls_total{door=\"sip\"}"), 4);
  EXPECT_EQ(gw.metric("moshi_gateway_calls_ended_total{door=\"sip\",reason=\"remote-bye\"}"), 4);
  EXPECT_GT(gw.metric("moshi_gateway_step_seconds_count"), 4 * 20);
  EXPECT_TRUE(g_file_test(dir.path("call-1.txt").c_str(), G_FILE_TEST_EXISTS));
  gw.process->signal(SIGTERM);
  ASSERT_TRUE(gw.process->wait(15));
  EXPECT_EQ(gw.process->exit_status(), 0) << gw.log();
}

// With stt-model, the caller's words (kyutaistt on the caller's audio) are lines of the
// transcript beside Moshi's.
TEST(Gateway, CallerWordsGoIntoTheTranscript) {
  REQUIRE_BARESIP();
  TempDir dir;
  GatewayOptions options;
  options.extra = {"--transcript-dir", dir.path(""), "--stt-model",
                   source_root() + "/models/stt-tiny"};
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  Caller caller(kPcmu, gw.uri(), 4);
  ASSERT_TRUE(caller.finish(25)) << caller.log();
  ASSERT_TRUE(gw.wait_log("call 1 ended (remote-bye)")) << gw.log();
  const std::string transcript = read_file(dir.path("call-1.txt"));
  const std::string lines = "\n" + transcript;
  EXPECT_NE(lines.find("\ncaller: "), std::string::npos) << transcript;
  EXPECT_NE(lines.find("\nmoshi: "), std::string::npos) << transcript;
  gw.process->signal(SIGTERM);
  ASSERT_TRUE(gw.process->wait(15));
  EXPECT_EQ(gw.process->exit_status(), 0) << gw.log();
}

TEST(Gateway, ThreeCallsAtOnceAndAFourthIsBusy) {
  REQUIRE_BARESIP();
  TempDir dir;
  // The limit comes from a configuration file, as an operator would give it.
  std::ofstream(dir.path("gateway.ini")) << "[gateway]\n# at most three\nmax-calls = 3\n";
  GatewayOptions options;
  options.max_calls = 0;
  options.extra = {"--config", dir.path("gateway.ini")};
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < 3; ++i) callers.push_back(std::make_unique<Caller>(kPcmu, gw.uri(), 5));
  ASSERT_TRUE(gw.wait_log(" from sip:caller@127.0.0.1", 15, 3)) << gw.log();
  EXPECT_EQ(gw.metric("moshi_gateway_active_calls"), 3);
  Caller fourth(kPcmu, gw.uri(), 2);
  ASSERT_TRUE(fourth.finish(25));
  EXPECT_NE(fourth.log().find("486 Busy Here"), std::string::npos) << fourth.log();
  EXPECT_EQ(fourth.log().find("Call established"), std::string::npos);
  EXPECT_EQ(gw.metric("moshi_gateway_calls_rejected_total{door=\"sip\",reason=\"busy\"}"), 1);
  for (auto& caller : callers) ASSERT_TRUE(caller->finish(25));
  ASSERT_TRUE(gw.wait_log("ended (remote-bye)", 10, 3)) << gw.log();
  // Which caller was which call is not known: each is judged by the least any call produced.
  double produced = 1e9;
  for (int n = 1; n <= 3; ++n) produced = std::min(produced, gw.produced_seconds(n));
  for (auto& caller : callers) expect_heard(*caller, 5, produced);
  EXPECT_EQ(gw.metric("moshi_gateway_active_calls"), 0);
  EXPECT_EQ(gw.metric("moshi_gateway_calls_total{door=\"sip\"}"), 3);
}

// A raw caller that never sends RTP: put on hold (inactive) it is kept, resumed it is hung up
// after the time-out, with a BYE it answers.
TEST(Gateway, HoldThenSilentCallerIsHungUp) {
  TempDir dir;
  GatewayOptions options;
  options.rtp_timeout = 1.5;
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  RawSip peer;
  const std::string uri = gw.uri(), call_id = "silent1";
  const std::string to = "<" + uri + ">";
  peer.send(request(peer, "INVITE", uri, call_id, 1, to, sdp_offer(40000, "sendrecv", 1)),
            gw.sip_port);
  const std::string ok = peer.final_response("INVITE", call_id, 10);
  ASSERT_EQ(status_of(ok), 200) << ok;
  const std::string answer = body_of(ok);
  EXPECT_NE(answer.find("a=rtpmap:0 PCMU/8000"), std::string::npos) << answer;
  EXPECT_EQ(answer.find("telephone-event"), std::string::npos) << answer;
  EXPECT_NE(answer.find("a=ptime:20"), std::string::npos) << answer;
  const std::string dialog_to = header(ok, "To"), target = contact_uri(ok);
  peer.send(request(peer, "ACK", target, call_id, 1, dialog_to), gw.sip_port);
  // Hold at once (before the time-out): the caller sends nothing, and that is fine.
  peer.send(request(peer, "INVITE", target, call_id, 2, dialog_to, sdp_offer(40000, "inactive", 2)),
            gw.sip_port);
  const std::string held = peer.final_response("INVITE", call_id, 5);
  ASSERT_EQ(status_of(held), 200) << held;
  EXPECT_NE(body_of(held).find("a=inactive"), std::string::npos) << body_of(held);
  peer.send(request(peer, "ACK", target, call_id, 2, dialog_to), gw.sip_port);
  EXPECT_EQ(peer.receive(3), "") << "a call on hold was hung up";
  EXPECT_EQ(gw.metric("moshi_gateway_active_calls"), 1);
  // Resumed, still silent: BYE after 1.5 s.
  peer.send(request(peer, "INVITE", target, call_id, 3, dialog_to, sdp_offer(40000, "sendrecv", 3)),
            gw.sip_port);
  const std::string resumed = peer.final_response("INVITE", call_id, 5);
  ASSERT_EQ(status_of(resumed), 200) << resumed;
  EXPECT_NE(body_of(resumed).find("a=sendrecv"), std::string::npos);
  peer.send(request(peer, "ACK", target, call_id, 3, dialog_to), gw.sip_port);
  std::string bye;
  const gint64 sent = g_get_monotonic_time();
  while (bye.rfind("BYE ", 0) != 0 && g_get_monotonic_time() - sent < 6 * G_USEC_PER_SEC)
    bye = peer.receive(6);
  ASSERT_EQ(bye.rfind("BYE ", 0), 0u) << "no BYE: " << gw.log();
  EXPECT_GT(g_get_monotonic_time() - sent, 1 * G_USEC_PER_SEC);
  peer.send(ok_to(bye), gw.sip_port);
  EXPECT_TRUE(gw.wait_log("ended (rtp-timeout)")) << gw.log();
  EXPECT_EQ(gw.metric("moshi_gateway_calls_ended_total{door=\"sip\",reason=\"rtp-timeout\"}"), 1);
}

// Garbage, truncated requests and bad SDP: answered or dropped, and the next call works.
TEST(Gateway, GarbageDoesNotDisturbIt) {
  TempDir dir;
  GatewayProcess gw(dir, GatewayOptions());
  ASSERT_TRUE(gw.started()) << gw.log();
  RawSip peer;
  const std::string uri = gw.uri(), to = "<" + uri + ">";
  const std::string invite =
      request(peer, "INVITE", uri, "junk1", 1, to, sdp_offer(40002, "sendrecv", 1));
  std::string binary(1500, '\0');
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 7919 % 251);
  for (const std::string& junk :
       {std::string("hello"), binary, std::string("\r\n\r\n"), invite.substr(0, 40),
        invite.substr(0, invite.find("Call-ID")), invite.substr(0, invite.size() - 30),
        std::string("SIP/2.0 200 OK\r\n\r\n"), std::string("INVITE sip:x SIP/9.9\r\n\r\n")})
    peer.send(junk, gw.sip_port);
  // The same garbage over TCP.
  const int tcp = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(gw.sip_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int connected = connect(tcp, reinterpret_cast<sockaddr*>(&a), sizeof a);
  EXPECT_EQ(connected, 0) << "the gateway listens on TCP too";
  if (connected == 0) {
    ASSERT_GT(write(tcp, binary.data(), binary.size()), 0);
    ASSERT_GT(write(tcp, invite.data(), invite.size() / 2), 0);
  }
  close(tcp);
  // A well-formed INVITE with broken SDP: 400; with no codec of the gateway: 488.
  peer.send(request(peer, "INVITE", uri, "junk2", 1, to, "v=0\r\nm=audio x\r\n"), gw.sip_port);
  EXPECT_EQ(status_of(peer.final_response("INVITE", "junk2", 5)), 400);
  const std::string g729 =
      "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
      "m=audio 40002 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
  peer.send(request(peer, "INVITE", uri, "junk3", 1, to, g729), gw.sip_port);
  EXPECT_EQ(status_of(peer.final_response("INVITE", "junk3", 5)), 488);
  // OPTIONS, as a PBX probes.
  peer.send(request(peer, "OPTIONS", uri, "probe1", 1, to), gw.sip_port);
  EXPECT_EQ(status_of(peer.final_response("OPTIONS", "probe1", 5)), 200);
  if (!have_baresip()) GTEST_SKIP() << "baresip is not installed: no call after the garbage";
  Caller caller(kPcmu, uri, 2);
  ASSERT_TRUE(caller.finish(25));
  ASSERT_TRUE(gw.wait_log("call 1 ended")) << gw.log();
  expect_heard(caller, 2, gw.produced_seconds(1));
  EXPECT_EQ(gw.metric("moshi_gateway_calls_total{door=\"sip\"}"), 1);
}

// SIGTERM: every call gets a BYE, and the gateway exits cleanly.
TEST(Gateway, ShutdownHangsUpEveryCall) {
  REQUIRE_BARESIP();
  TempDir dir;
  GatewayProcess gw(dir, GatewayOptions());
  ASSERT_TRUE(gw.started()) << gw.log();
  Caller first(kPcmu, gw.uri(), 10), second(kOpus, gw.uri(), 10);
  ASSERT_TRUE(gw.wait_log(" from sip:caller@127.0.0.1", 15, 2)) << gw.log();
  g_usleep(G_USEC_PER_SEC);
  // What the gateway promises (docs/GATEWAY.md): BYE to every call at once, then it waits at
  // most its 3 s shutdown grace for the answers (and 5 s more for the SIP stack). These callers
  // answer at once, so it is gone before the grace is over.
  constexpr double kShutdownGraceS = 3;
  const gint64 signalled = g_get_monotonic_time();
  gw.process->signal(SIGTERM);
  ASSERT_TRUE(gw.process->wait(15)) << gw.log();
  const double took = (g_get_monotonic_time() - signalled) / 1e6;
  EXPECT_LT(took, kShutdownGraceS) << gw.log();
  EXPECT_EQ(gw.process->exit_status(), 0) << gw.log();
  EXPECT_TRUE(gw.wait_log("ended (shutdown)", 1, 2)) << gw.log();
  for (Caller* c : {&first, &second}) {
    // The gateway hung up, long before the callers' own 10 s.
    EXPECT_TRUE(wait_until([&] { return c->log().find("terminated") != std::string::npos; }, 3))
        << c->log();
  }
}
