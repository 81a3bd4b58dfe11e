// moshi-gateway against callers that misbehave: held calls whose caller vanishes, offers it
// cannot place, bodies that are not SDP, RTP from strangers or faster than real time, and
// clients that hold TCP connections open. Each test starts its own gateway on loopback.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway_harness.h"

using namespace gwtest;

namespace {

// A UDP socket on 127.0.0.1 that sends RTP (PCMU, 20 ms packets) to one port.
class RtpSender {
 public:
  RtpSender() { fd_ = loopback_udp_socket(&port); }
  ~RtpSender() { close(fd_); }
  void send(int to_port) {
    unsigned char packet[12 + 160];
    packet[0] = 0x80;
    packet[1] = 0;  // PCMU
    const uint16_t seq = htons(seq_++);
    const uint32_t ts = htonl(ts_), ssrc = htonl(0x1234);
    ts_ += 160;
    std::memcpy(packet + 2, &seq, 2);
    std::memcpy(packet + 4, &ts, 4);
    std::memcpy(packet + 8, &ssrc, 4);
    for (int i = 0; i < 160; ++i) packet[12 + i] = static_cast<unsigned char>(0x20 + (i * 37) % 90);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(to_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sendto(fd_, packet, sizeof packet, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  int port = 0;

 private:
  int fd_ = -1;
  uint16_t seq_ = 1;
  uint32_t ts_ = 0;
};

// The RTP port of the gateway's SDP answer.
int answered_port(const std::string& response) {
  const std::string body = body_of(response);
  const size_t m = body.find("m=audio ");
  return m == std::string::npos ? 0 : std::atoi(body.c_str() + m + 8);
}

// A dialog the raw peer opened: INVITE answered 200 and ACKed.
struct Dialog {
  std::string call_id, to, target, ok;
  int cseq = 1;
};

Dialog invite(const RawSip& peer, const GatewayProcess& gw, const std::string& call_id,
              const std::string& sdp, const std::string& headers = "") {
  Dialog d;
  d.call_id = call_id;
  const std::string uri = gw.uri();
  peer.send(request(peer, "INVITE", uri, call_id, 1, "<" + uri + ">", sdp, headers), gw.sip_port);
  d.ok = peer.final_response("INVITE", call_id, 10);
  if (status_of(d.ok) != 200) return d;
  d.to = header(d.ok, "To");
  d.target = contact_uri(d.ok);
  peer.send(request(peer, "ACK", d.target, call_id, 1, d.to), gw.sip_port);
  return d;
}

// Sends a re-INVITE in dialog `d` and returns the final response (ACKed when 200).
std::string reinvite(const RawSip& peer, const GatewayProcess& gw, Dialog& d,
                     const std::string& sdp) {
  const int cseq = ++d.cseq;
  peer.send(request(peer, "INVITE", d.target, d.call_id, cseq, d.to, sdp), gw.sip_port);
  const std::string response = peer.final_response("INVITE", d.call_id, 5);
  if (status_of(response) == 200)
    peer.send(request(peer, "ACK", d.target, d.call_id, cseq, d.to), gw.sip_port);
  return response;
}

void bye(const RawSip& peer, const GatewayProcess& gw, Dialog& d) {
  peer.send(request(peer, "BYE", d.target, d.call_id, ++d.cseq, d.to), gw.sip_port);
  peer.final_response("BYE", d.call_id, 5);
}

// The next request the gateway sends to the peer whose method is `method`, "" after `seconds`.
std::string next_request(const RawSip& peer, const std::string& method, double seconds) {
  const gint64 end = g_get_monotonic_time() + static_cast<gint64>(seconds * G_USEC_PER_SEC);
  while (g_get_monotonic_time() < end) {
    const std::string m = peer.receive((end - g_get_monotonic_time()) / 1e6);
    if (m.rfind(method + " ", 0) == 0) return m;
  }
  return "";
}

std::string offer_with(const std::string& connection, const std::string& direction) {
  return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=" + connection +
         "\r\nt=0 0\r\nm=audio 40010 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=" + direction + "\r\n";
}

// True when the server closed `fd` (end of stream or reset) within `seconds`.
bool closed_by_server(int fd, double seconds) {
  timeval tv{static_cast<time_t>(seconds),
             static_cast<suseconds_t>((seconds - (int)seconds) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  const ssize_t n = recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

// CPU seconds (user + system) process `pid` has used.
double cpu_seconds(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t close_paren = line.rfind(')');
  std::istringstream fields(line.substr(close_paren + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; fields >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / sysconf(_SC_CLK_TCK);
}

}  // namespace

// A held call whose caller vanished: probed with OPTIONS, unanswered, hung up; one that answers
// its probes lasts until the hold time-out. Before, either lived until the gateway restarted.
TEST(Gateway, HeldCallsAreProbedAndBounded) {
  TempDir dir;
  GatewayOptions options;
  options.extra = {"--probe-interval", "1", "--hold-timeout", "4"};
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  RawSip vanished, present;
  Dialog gone = invite(vanished, gw, "held-gone", sdp_offer(40000, "sendrecv", 1));
  ASSERT_EQ(status_of(gone.ok), 200) << gone.ok;
  ASSERT_EQ(status_of(reinvite(vanished, gw, gone, sdp_offer(40000, "inactive", 2))), 200);
  Dialog here = invite(present, gw, "held-here", sdp_offer(40002, "sendonly", 1));
  ASSERT_EQ(status_of(here.ok), 200) << here.ok;
  EXPECT_NE(body_of(here.ok).find("a=recvonly"), std::string::npos) << here.ok;
  ASSERT_EQ(status_of(reinvite(present, gw, here, sdp_offer(40002, "inactive", 2))), 200);
  const gint64 held = g_get_monotonic_time();
  // The present caller answers every probe (and the BYE at the end), from its own thread.
  std::string byed;
  std::thread answering([&] {
    while (byed.empty() && g_get_monotonic_time() - held < 10 * G_USEC_PER_SEC) {
      const std::string m = present.receive(0.5);
      if (m.rfind("OPTIONS ", 0) == 0 || m.rfind("BYE ", 0) == 0)
        present.send(ok_to(m), gw.sip_port);
      if (m.rfind("BYE ", 0) == 0) byed = m;
    }
  });
  // The vanished caller gets a probe it does not answer: the call ends at the next one.
  const std::string probe = next_request(vanished, "OPTIONS", 3);
  EXPECT_NE(probe, "") << gw.log();
  EXPECT_EQ(header(probe, "Call-ID"), "held-gone");
  EXPECT_TRUE(gw.wait_log("call 1 ended (probe-timeout)", 5)) << gw.log();
  // The present one lasts until the hold time-out.
  answering.join();
  ASSERT_FALSE(byed.empty()) << gw.log();
  EXPECT_GT(g_get_monotonic_time() - held, 3 * G_USEC_PER_SEC);
  EXPECT_TRUE(gw.wait_log("call 2 ended (hold-timeout)")) << gw.log();
  EXPECT_EQ(gw.log().find("call 2 ended (probe-timeout)"), std::string::npos) << gw.log();
  EXPECT_EQ(gw.metric("moshi_gateway_active_calls"), 0);
}

// /healthz tells a load balancer or an orchestrator whether the gateway takes calls: 200 once it
// listens, 503 from SIGTERM on, while it waits for its callers to answer their BYE.
TEST(Gateway, HealthIsOkUntilShutdown) {
  TempDir dir;
  GatewayProcess gw(dir, GatewayOptions());
  ASSERT_TRUE(gw.started()) << gw.log();
  const GatewayProcess::HttpAnswer up = gw.get("/healthz");
  EXPECT_EQ(up.status, 200);
  EXPECT_EQ(up.body, "ok\n");
  // A caller that never answers the BYE keeps the gateway in its 3 s shutdown grace.
  RawSip silent;
  Dialog call = invite(silent, gw, "health", sdp_offer(40004, "sendrecv", 1));
  ASSERT_EQ(status_of(call.ok), 200) << call.ok;
  gw.process->signal(SIGTERM);
  ASSERT_NE(next_request(silent, "BYE", 5), "") << gw.log();
  EXPECT_EQ(gw.get("/healthz").status, 503) << gw.log();
  // 3 s of grace for the BYE, then at most 5 s for the SIP stack's shutdown (once: 13 s when
  // the door waited a second time); the sanitizers slow the rest (17.8 s for the whole test).
  ASSERT_TRUE(gw.process->wait(20)) << gw.log();
  EXPECT_EQ(gw.process->exit_status(), 0) << gw.log();
}

// Offers that start on hold are answered; addresses the gateway cannot send to get 488, at the
// start and in a re-INVITE (which leaves the call as it was). Before: 500, or 200 then a dead call.
TEST(Gateway, OffersOnHoldAreAnsweredAndUnreachableOnesRefused) {
  TempDir dir;
  GatewayOptions options;
  options.max_calls = 8;
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  RawSip peer;
  const std::vector<std::pair<std::string, std::string>> placed = {{"IN IP4 127.0.0.1", "sendonly"},
                                                                   {"IN IP4 127.0.0.1", "inactive"},
                                                                   {"IN IP4 0.0.0.0", "sendrecv"}};
  int n = 0;
  for (const auto& [connection, direction] : placed) {
    SCOPED_TRACE(connection + " " + direction);
    Dialog d = invite(peer, gw, "place" + std::to_string(++n), offer_with(connection, direction));
    EXPECT_EQ(status_of(d.ok), 200) << d.ok << gw.log();
    if (status_of(d.ok) == 200) bye(peer, gw, d);
  }
  for (const std::string connection : {"IN IP6 ::1", "IN IP4 pbx.example.com"}) {
    SCOPED_TRACE(connection);
    Dialog d = invite(peer, gw, "refuse" + std::to_string(++n), offer_with(connection, "sendrecv"));
    EXPECT_EQ(status_of(d.ok), 488) << d.ok;
  }
  Dialog d = invite(peer, gw, "move", sdp_offer(40004, "sendrecv", 1));
  ASSERT_EQ(status_of(d.ok), 200);
  EXPECT_EQ(status_of(reinvite(peer, gw, d, offer_with("IN IP6 ::1", "sendrecv"))), 488);
  // The call goes on: a re-INVITE back to IPv4 is answered.
  EXPECT_EQ(status_of(reinvite(peer, gw, d, sdp_offer(40004, "sendrecv", 3))), 200);
  EXPECT_EQ(gw.metric("moshi_gateway_active_calls"), 1);
  EXPECT_EQ(gw.log().find("media-error"), std::string::npos) << gw.log();
  bye(peer, gw, d);
}

// A body that is not SDP gets 415 with what the gateway accepts; SDP inside a multipart body is
// taken. Before: text/plain and gzip were read as SDP (200), multipart got 400.
TEST(Gateway, BodiesAreTakenByTheirContentType) {
  TempDir dir;
  GatewayProcess gw(dir, GatewayOptions());
  ASSERT_TRUE(gw.started()) << gw.log();
  RawSip peer;
  const std::string sdp = sdp_offer(40006, "sendrecv", 1);
  Dialog text = invite(peer, gw, "plain", sdp, "Content-Type: text/plain\r\n");
  EXPECT_EQ(status_of(text.ok), 415) << text.ok;
  EXPECT_NE(header(text.ok, "Accept").find("application/sdp"), std::string::npos) << text.ok;
  Dialog gzip = invite(peer, gw, "gzip", sdp, "Content-Encoding: gzip\r\n");
  EXPECT_EQ(status_of(gzip.ok), 415) << gzip.ok;
  const std::string boundary = "b0undary";
  const std::string multipart_type = "Content-Type: multipart/mixed;boundary=" + boundary + "\r\n";
  const std::string isup =
      "--" + boundary + "\r\nContent-Type: application/isup\r\n\r\n\x01\x02\x03\r\n";
  Dialog mixed = invite(peer, gw, "mixed",
                        isup + "--" + boundary + "\r\nContent-Type: application/sdp\r\n\r\n" + sdp +
                            "\r\n--" + boundary + "--\r\n",
                        multipart_type);
  EXPECT_EQ(status_of(mixed.ok), 200) << mixed.ok << gw.log();
  if (status_of(mixed.ok) == 200) bye(peer, gw, mixed);
  Dialog no_sdp = invite(peer, gw, "nosdp", isup + "--" + boundary + "--\r\n", multipart_type);
  EXPECT_EQ(status_of(no_sdp.ok), 415) << no_sdp.ok;
  EXPECT_EQ(gw.metric("moshi_gateway_calls_rejected_total{door=\"sip\",reason=\"body\"}"), 3);
}

// RTP is taken from the caller only, and never faster than real time: a caller sending 20 times
// too fast gets about one step per 80 ms of the call (before: 2,265 steps against 185), and a
// stranger's packets neither reach Moshi nor keep a silent call alive.
TEST(Gateway, RtpOnlyFromTheCallerAndAtRealTime) {
  TempDir dir;
  GatewayOptions options;
  options.rtp_timeout = 1.5;
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  RawSip peer;
  RtpSender caller, stranger;
  Dialog d = invite(peer, gw, "fast", sdp_offer(caller.port, "sendrecv", 1, "0"));
  ASSERT_EQ(status_of(d.ok), 200) << d.ok;
  const int port = answered_port(d.ok);
  ASSERT_GT(port, 0) << d.ok;
  // 3 s of wall time, 60 s of audio.
  const gint64 start = g_get_monotonic_time();
  for (int i = 0; i < 3000; ++i) {
    caller.send(port);
    if (i % 20 == 19) g_usleep(20000);
  }
  while (g_get_monotonic_time() - start < 3 * G_USEC_PER_SEC) g_usleep(10000);
  // Then only a stranger sends: the call times out all the same.
  std::string byed;
  for (int i = 0; i < 150 && byed.empty(); ++i) {
    stranger.send(port);
    byed = peer.receive(0.02);
  }
  if (byed.rfind("BYE ", 0) != 0) byed = next_request(peer, "BYE", 5);
  ASSERT_EQ(byed.rfind("BYE ", 0), 0u) << gw.log();
  peer.send(ok_to(byed), gw.sip_port);
  ASSERT_TRUE(gw.wait_log("call 1 ended (rtp-timeout)")) << gw.log();
  const double wall = (g_get_monotonic_time() - start) / 1e6;
  const double produced = gw.produced_seconds(1);
  EXPECT_LT(produced, wall + 1.0) << gw.log();
  EXPECT_EQ(gw.log().find(" 0 RTP packets from other sources dropped"), std::string::npos)
      << gw.log();
}

// Clients that hold TCP connections (SIP and /metrics) are capped and closed when idle, and the
// gateway neither spins nor loses /metrics when handles run short. Run with a low open-file
// limit, as a flood would leave it. Before: idle connections stayed for ever, the gateway spun
// at 100 % while SIP TCP held every handle, and /metrics never came back.
TEST(Gateway, TcpConnectionsAreCappedAndIdleOnesClosed) {
  g_autofree char* prlimit = g_find_program_in_path("prlimit");
  if (!prlimit) GTEST_SKIP() << "prlimit (util-linux) is not installed";
  TempDir dir;
  GatewayOptions options;
  options.wrapper = {prlimit, "--nofile=256:256", "--"};
  options.extra = {"--max-connections", "1000", "--tcp-idle-timeout", "2"};
  GatewayProcess gw(dir, options);
  ASSERT_TRUE(gw.started()) << gw.log();
  EXPECT_NE(gw.log().find("max-connections lowered"), std::string::npos) << gw.log();
  std::vector<int> held;
  for (int i = 0; i < 300; ++i)
    for (int port : {gw.sip_port, gw.metrics_port})
      if (const int fd = connect_tcp(port); fd >= 0) held.push_back(fd);
  g_usleep(1500 * 1000);  // the SIP cap is checked once a second
  // While they are held: no spinning, and the gateway still answers.
  const int pid = gw.process->pid();
  const double cpu_before = cpu_seconds(pid);
  g_usleep(G_USEC_PER_SEC);
  EXPECT_LT(cpu_seconds(pid) - cpu_before, 0.5) << "the gateway spins";
  RawSip peer;
  peer.send(request(peer, "OPTIONS", gw.uri(), "alive1", 1, "<" + gw.uri() + ">"), gw.sip_port);
  EXPECT_EQ(status_of(peer.final_response("OPTIONS", "alive1", 5)), 200) << gw.log();
  // Those past the cap were closed at once, the rest once idle for 2 s: all within 5 s.
  const gint64 until = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  size_t closed = 0;
  for (int fd : held) {
    if (closed_by_server(fd, std::max(0.01, (until - g_get_monotonic_time()) / 1e6))) closed++;
    close(fd);
  }
  EXPECT_EQ(closed, held.size()) << gw.log();
  EXPECT_FALSE(gw.metrics().empty()) << "/metrics did not come back: " << gw.log();
}
