// Kamailio in front of two gateways, with the configuration the project ships
// (gateway/kamailio/kamailio.cfg, docs/GATEWAY.md): calls spread round-robin, a full gateway's 486
// moves the call to the other, and a stopped gateway is found by the OPTIONS pings and skipped.
// Debian's kamailio runs as the current user, in the foreground, on free loopback ports, with
// every file it writes in the test's temporary directory.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gateway_harness.h"

using namespace gwtest;

namespace {

const CodecCase kPcmu{"PCMU/8000", "PCMU", 8000, 1};

// The test's values for the configuration's defines: pings every second, a gateway silent for
// two seconds is down. A gateway answers an INVITE only once the call's pipeline is built, which
// under the sanitizers and a full machine can take most of a second.
constexpr int kPingIntervalS = 1;
constexpr int kAnswerTimeoutMs = 2000;

std::string program(const char* name, const char* fallback) {
  g_autofree char* path = g_find_program_in_path(name);
  if (path) return path;
  return g_file_test(fallback, G_FILE_TEST_IS_EXECUTABLE) ? fallback : "";
}

class Kamailio {
 public:
  Kamailio(const TempDir& dir, const std::vector<const GatewayProcess*>& gateways) {
    port = free_ports(1);
    std::ofstream list(dir.path("dispatcher.list"));
    for (const GatewayProcess* gw : gateways) list << "1 sip:127.0.0.1:" << gw->sip_port << "\n";
    list.close();
    g_mkdir_with_parents(dir.path("run").c_str(), 0700);
    pid_file_ = dir.path("kamailio.pid");
    // timeout bounds its life and passes a SIGTERM on (from the test, or from the test's death):
    // Kamailio stops its worker processes only when its main process is told to stop.
    std::vector<std::string> argv = {
        "timeout", "-k", "5", "120", program("kamailio", "/usr/sbin/kamailio"), "-DD", "-E"};
    // Small memory pools, and every file it writes in the test's directory.
    argv.insert(argv.end(),
                {"-f", source_root() + "/gateway/kamailio/kamailio.cfg", "-m", "32", "-M", "4",
                 "-P", pid_file_, "-Y", dir.path("run"), "-w", dir.path("")});
    const std::string defines[] = {"SIP_IP=127.0.0.1", "SIP_PORT=" + std::to_string(port),
                                   "DISPATCHER_LIST=\"" + dir.path("dispatcher.list") + "\"",
                                   "PING_INTERVAL=" + std::to_string(kPingIntervalS),
                                   "ANSWER_TIMEOUT_MS=" + std::to_string(kAnswerTimeoutMs)};
    for (const std::string& define : defines) argv.insert(argv.end(), {"-A", define});
    process = std::make_unique<Process>(argv, dir.path("kamailio.log"), SIGTERM);
  }
  ~Kamailio() {
    stop();
    process->wait(10);
  }
  // Stopped by the PID it wrote, with SIGTERM; it then stops its workers.
  void stop() {
    const int pid = std::atoi(read_file(pid_file_).c_str());
    if (pid > 0) kill(pid, SIGTERM);
  }
  bool started() {
    return wait_until([&] { return !udp_port_free(port) && !read_file(pid_file_).empty(); }, 10);
  }
  std::string uri() const { return "sip:moshi@127.0.0.1:" + std::to_string(port); }
  std::string log() const { return process->log(); }
  int port = 0;
  std::unique_ptr<Process> process;

 private:
  std::string pid_file_;
};

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

// `n` callers at once, each for `seconds`.
std::vector<std::unique_ptr<Caller>> call(const Kamailio& proxy, int n, int seconds) {
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < n; ++i)
    callers.push_back(std::make_unique<Caller>(kPcmu, proxy.uri(), seconds));
  return callers;
}

// Every caller was answered, and never heard a refusal.
void expect_answered(std::vector<std::unique_ptr<Caller>>& callers) {
  for (auto& caller : callers) {
    ASSERT_TRUE(caller->finish(30)) << caller->log();
    EXPECT_NE(caller->log().find("Call established"), std::string::npos) << caller->log();
    EXPECT_EQ(caller->log().find("Busy Here"), std::string::npos) << caller->log();
  }
}

double answered(const GatewayProcess& gw) {
  return gw.metric("moshi_gateway_calls_total{door=\"sip\"}");
}

}  // namespace

TEST(Kamailio, SpreadsCallsFailsOverOnBusyAndSkipsAStoppedGateway) {
  if (program("kamailio", "/usr/sbin/kamailio").empty())
    GTEST_SKIP() << "kamailio is not installed (scripts/setup.sh installs it)";
  if (program("baresip", "/usr/bin/baresip").empty())
    GTEST_SKIP() << "baresip is not installed (scripts/setup.sh installs it)";
  TempDir dir_a, dir_b, dir_k;
  GatewayOptions small, large;
  small.max_calls = small.rtp_pairs = 2;
  large.max_calls = large.rtp_pairs = 4;
  GatewayProcess a(dir_a, small), b(dir_b, large);
  ASSERT_TRUE(a.started()) << a.log();
  ASSERT_TRUE(b.started()) << b.log();
  // Only now: a ping to a gateway still loading would mark it down for the first calls.
  Kamailio proxy(dir_k, {&a, &b});
  ASSERT_TRUE(proxy.started()) << proxy.log();

  // Four calls at once, round-robin: two each (a is then full until they end, 10 s from now).
  auto first = call(proxy, 4, 10);
  ASSERT_TRUE(a.wait_log(" from sip:caller@127.0.0.1", 15, 2)) << a.log() << proxy.log();
  ASSERT_TRUE(b.wait_log(" from sip:caller@127.0.0.1", 15, 2)) << b.log() << proxy.log();
  EXPECT_EQ(answered(a), 2);
  EXPECT_EQ(answered(b), 2);

  // Two more while those go on: the one Kamailio sends to the full gateway gets 486 there and is
  // passed to the other; the caller never sees the 486.
  auto second = call(proxy, 2, 4);
  ASSERT_TRUE(b.wait_log(" from sip:caller@127.0.0.1", 15, 4)) << b.log() << proxy.log();
  expect_answered(second);
  expect_answered(first);
  EXPECT_EQ(answered(a), 2);
  EXPECT_EQ(answered(b), 4);
  EXPECT_EQ(a.metric("moshi_gateway_calls_rejected_total{door=\"sip\",reason=\"busy\"}"), 1);
  EXPECT_EQ(count_of(proxy.log(), ": 486 from the gateway, next is"), 1) << proxy.log();

  // Gateway a stops. Once the pings have found it silent, every new call goes to b at once: none
  // is first sent to a and moved on after a time-out.
  a.process->signal(SIGTERM);
  ASSERT_TRUE(a.process->wait(15)) << a.log();
  g_usleep((2 * kPingIntervalS * 1000 + kAnswerTimeoutMs + 2000) * 1000);
  auto third = call(proxy, 3, 3);
  expect_answered(third);
  EXPECT_EQ(answered(b), 7);
  EXPECT_EQ(count_of(proxy.log(), ": 408 from the gateway"), 0) << proxy.log();
}
