#include "gateway_harness.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace gwtest {

namespace fs = std::filesystem;

std::string source_root() {
  return KYUTAI_SOURCE_ROOT;
}

bool wait_until(const std::function<bool()>& done, double seconds) {
  const gint64 deadline = g_get_monotonic_time() + static_cast<gint64>(seconds * 1e6);
  while (!done()) {
    if (g_get_monotonic_time() > deadline) return false;
    while (g_main_context_iteration(nullptr, FALSE)) {
    }
    g_usleep(20000);
  }
  return true;
}

namespace {

bool bind_free(int type, int port) {
  const int fd = socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

}  // namespace

bool udp_port_free(int port) {
  return bind_free(SOCK_DGRAM, port);
}

namespace {

// Test processes run side by side (meson runs suites in parallel) and each hands its ports to a
// gateway that binds them later: a port seen free by two processes at once went to both. So a
// process first claims blocks of ports with an advisory lock on a file per block, held until
// it exits (the kernel drops it then, even after a crash), and takes its ports inside them.
constexpr int kFirstPort = 11000, kLastPort = 30000, kBlock = 100;

int claim_block() {
  static int next = static_cast<int>(getpid() % ((kLastPort - kFirstPort) / kBlock));
  const int blocks = (kLastPort - kFirstPort) / kBlock;
  for (int tries = 0; tries < blocks; ++tries) {
    const int block = next;
    next = (next + 1) % blocks;
    const std::string path = "/tmp/gst-moshi-test-ports." + std::to_string(block);
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return kFirstPort + block * kBlock;  // fd kept
    close(fd);
  }
  throw std::runtime_error("no free block of test ports");
}

}  // namespace

int free_ports(int count) {
  if (count > kBlock) throw std::invalid_argument("at most 100 test ports at once");
  static int next = 0, end = 0;
  for (int tries = 0; tries < 2000; ++tries) {
    if (next + count > end) {
      next = claim_block();
      end = next + kBlock;
    }
    const int base = next;
    next += count + (count & 1);
    bool ok = true;  // a port of the block may still be taken by another program
    for (int p = base; ok && p < base + count; ++p)
      ok = bind_free(SOCK_DGRAM, p) && bind_free(SOCK_STREAM, p);
    if (ok) return base;
  }
  throw std::runtime_error("no free ports");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TempDir::TempDir() {
  g_autoptr(GError) error = nullptr;
  g_autofree char* dir = g_dir_make_tmp("moshi-gateway-test-XXXXXX", &error);
  if (!dir) throw std::runtime_error("cannot make a temporary directory");
  dir_ = dir;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

Process::Process(const std::vector<std::string>& argv, const std::string& log_path,
                 int death_signal)
    : log_path_(log_path) {
  g_autoptr(GSubprocessLauncher) launcher =
      g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_stdout_file_path(launcher, log_path.c_str());
  // The child dies with the test, even when the test itself is killed.
  g_subprocess_launcher_set_child_setup(
      launcher, [](gpointer sig) { prctl(PR_SET_PDEATHSIG, GPOINTER_TO_INT(sig)); },
      GINT_TO_POINTER(death_signal), nullptr);
  std::vector<const char*> args;
  for (const std::string& a : argv) args.push_back(a.c_str());
  args.push_back(nullptr);
  g_autoptr(GError) error = nullptr;
  process_ = g_subprocess_launcher_spawnv(launcher, args.data(), &error);
  if (!process_) throw std::runtime_error("cannot start " + argv[0] + ": " + error->message);
}

Process::~Process() {
  if (!wait(0)) {
    g_subprocess_force_exit(process_);
    wait(10);
  }
  g_object_unref(process_);
}

int Process::pid() const {
  const char* id = g_subprocess_get_identifier(process_);
  return id ? std::atoi(id) : -1;
}

bool Process::wait(double seconds) {
  if (exited_) return true;
  struct State {
    bool done = false;
  };
  auto* state = new State;
  g_subprocess_wait_async(
      process_, nullptr,
      [](GObject*, GAsyncResult*, gpointer data) { static_cast<State*>(data)->done = true; },
      state);
  // The callback always runs (it holds the state), so wait for it, briefly, even at time-out.
  exited_ = wait_until([&] { return state->done; }, seconds);
  if (exited_) {
    delete state;
  } else {
    // The callback still refers to it: kept, reachable, until the test program ends.
    static std::vector<std::unique_ptr<State>> pending;
    pending.emplace_back(state);
  }
  return exited_;
}

void Process::signal(int sig) {
  g_subprocess_send_signal(process_, sig);
}

int Process::exit_status() const {
  if (!exited_ || !g_subprocess_get_if_exited(process_)) return -1;
  return g_subprocess_get_exit_status(process_);
}

GatewayProcess::GatewayProcess(const TempDir& dir, const GatewayOptions& o) {
  sip_port = free_ports(1);
  rtp_min = free_ports(2 * o.rtp_pairs);
  metrics_port = free_ports(1);
  std::vector<std::string> argv = {
      std::getenv("MOSHI_GATEWAY") ? std::getenv("MOSHI_GATEWAY") : "build/gateway/moshi-gateway",
      "--model",
      source_root() + "/models/moshi-tiny",
      "--listen",
      "127.0.0.1",
      "--sip-port",
      std::to_string(sip_port),
      "--rtp-ports",
      std::to_string(rtp_min) + "-" + std::to_string(rtp_min + 2 * o.rtp_pairs - 1),
      "--metrics-port",
      std::to_string(metrics_port),
      "--rtp-timeout",
      std::to_string(o.rtp_timeout),
      "--threads",
      "1"};
  if (o.audiosocket) {
    audiosocket_port = free_ports(1);
    argv.insert(argv.end(), {"--audiosocket-port", std::to_string(audiosocket_port)});
  }
  if (o.websocket) {
    ws_port = free_ports(1);
    argv.insert(argv.end(), {"--ws-port", std::to_string(ws_port)});
  }
  if (o.max_calls > 0) argv.insert(argv.end(), {"--max-calls", std::to_string(o.max_calls)});
  argv.insert(argv.end(), o.extra.begin(), o.extra.end());
  argv.insert(argv.begin(), o.wrapper.begin(), o.wrapper.end());
  process = std::make_unique<Process>(argv, dir.path("gateway.log"));
}

std::string GatewayProcess::uri(const std::string& transport) const {
  return "sip:moshi@127.0.0.1:" + std::to_string(sip_port) +
         (transport.empty() ? "" : ";transport=" + transport);
}

bool GatewayProcess::started() {
  return wait_log("listening for SIP", 30) &&
         (!audiosocket_port || wait_log("listening for AudioSocket", 5)) &&
         (!ws_port || wait_log("listening for websockets", 5));
}

bool GatewayProcess::wait_log(const std::string& text, double seconds, int count) {
  return wait_until(
      [&] {
        const std::string log = process->log();
        int found = 0;
        for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1))
          found++;
        return found >= count;
      },
      seconds);
}

GatewayProcess::HttpAnswer GatewayProcess::get(const std::string& path) const {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(metrics_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof buffer)) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || body == std::string::npos) return {};
  return {std::atoi(response.c_str() + 9), response.substr(body + 4)};
}

// The number just before `unit` in call `call`'s summary line; -1 if the call has not ended.
double GatewayProcess::summary_number(int call, const std::string& unit) const {
  const std::string log = process->log();
  const size_t at = log.find("call " + std::to_string(call) + " ended (");
  if (at == std::string::npos) return -1;
  const size_t end = log.find('\n', at);
  const size_t found = log.find(unit, at);
  if (found == std::string::npos || found > end) return -1;
  const size_t number = log.rfind(", ", found);
  return std::atof(log.c_str() + number + 2);
}

double GatewayProcess::produced_seconds(int call) const {
  const double steps = summary_number(call, " steps,");
  return steps < 0 ? -1 : steps * 0.08;
}

double GatewayProcess::dropped_seconds(int call) const {
  return summary_number(call, " s of Moshi's voice dropped");
}

double GatewayProcess::metric(const std::string& series) const {
  std::istringstream lines(metrics());
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return NAN;
}

namespace {

// Offset of the "data" chunk's header in a WAV file, or npos.
size_t data_chunk(const std::string& wav) {
  size_t at = 12;
  while (at + 8 <= wav.size() && wav.compare(at, 4, "data") != 0) {
    uint32_t size = 0;
    std::memcpy(&size, wav.data() + at + 4, 4);
    at += 8 + size;
  }
  return at + 8 <= wav.size() ? at : std::string::npos;
}

// Rewrites a WAV file with its samples `times` over.
void repeat_wav(const std::string& path, int times) {
  const std::string wav = read_file(path);
  const size_t at = data_chunk(wav);
  if (at == std::string::npos) throw std::runtime_error("no data in " + path);
  const std::string samples = wav.substr(at + 8);
  std::string out = wav.substr(0, at + 8);
  for (int i = 0; i < times; ++i) out += samples;
  const uint32_t data_size = samples.size() * times, riff_size = out.size() - 8;
  std::memcpy(&out[at + 4], &data_size, 4);
  std::memcpy(&out[4], &riff_size, 4);
  std::ofstream(path, std::ios::binary) << out;
}

}  // namespace

std::string voice_wav(int rate, int channels) {
  static TempDir dir;
  static std::map<std::pair<int, int>, std::string> made;
  std::string& path = made[{rate, channels}];
  if (!path.empty()) return path;
  path = dir.path("voice-" + std::to_string(rate) + "-" + std::to_string(channels) + ".wav");
  const std::string command =
      "timeout 60 gst-launch-1.0 -q filesrc location=" + source_root() +
      "/tests/data/speechlike.wav ! wavparse ! audioconvert ! audioresample ! "
      "audio/x-raw,format=S16LE,rate=" +
      std::to_string(rate) + ",channels=" + std::to_string(channels) +
      " ! wavenc ! filesink location=" + path;
  int status = -1;
  if (!g_spawn_command_line_sync(command.c_str(), nullptr, nullptr, &status, nullptr) ||
      status != 0)
    throw std::runtime_error("cannot convert the caller's voice: " + command);
  repeat_wav(path, 4);
  return path;
}

std::string voice_pcm(int rate) {
  const std::string wav = read_file(voice_wav(rate, 1));
  const size_t at = data_chunk(wav);
  if (at == std::string::npos) throw std::runtime_error("no data in the voice");
  return wav.substr(at + 8);
}

int connect_tcp(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  close(fd);
  return -1;
}

Caller::Caller(const CodecCase& codec, const std::string& uri, int seconds)
    : dir(std::make_unique<TempDir>()) {
  const int port = free_ports(1);
  // baresip's own RTP ports come from the same allocator: its default range (10000-20000) would
  // overlap the gateways' of the suites running beside it, whose calls then find no free port.
  const int rtp = free_ports(4);
  // Only file modules: no sound card, no stdin (CI runs without either).
  std::ofstream(dir->path("config"))
      << "poll_method epoll\nsip_listen 127.0.0.1:" << port << "\nrtp_ports " << rtp << "-"
      << rtp + 3 << "\nnet_interface 127.0.0.1\naudio_source aufile," << voice_wav(codec.rate, codec.channels)
      << "\naudio_player aufile,none\nmodule_path /usr/lib/baresip/modules\n"
         "module aufile.so\nmodule g711.so\nmodule g722.so\nmodule opus.so\nmodule sndfile.so\n"
         "module_app account.so\nmodule_app menu.so\nsnd_path "
      << dir->path("") << "\nrtp_timeout 0\n";
  std::ofstream(dir->path("accounts"))
      << "<sip:caller@127.0.0.1>;regint=0;audio_codecs=" << codec.baresip << "\n";
  std::ofstream(dir->path("contacts")) << "";
  process = std::make_unique<Process>(
      std::vector<std::string>{"timeout", "-s", "KILL", std::to_string(seconds + 20), "baresip",
                               "-f", dir->path(""), "-e", "/dial " + uri, "-t",
                               std::to_string(seconds)},
      dir->path("baresip.log"));
}

Heard Caller::heard() const {
  Heard heard;
  for (const auto& entry : fs::directory_iterator(dir->path(""))) {
    const std::string name = entry.path().filename();
    if (name.rfind("dump-", 0) != 0 || name.find("-dec.wav") == std::string::npos) continue;
    const std::string wav = read_file(entry.path());
    if (wav.size() < 44) continue;
    int channels = 0, rate = 0;
    std::memcpy(&channels, wav.data() + 22, 2);
    std::memcpy(&rate, wav.data() + 24, 4);
    const size_t at = data_chunk(wav);
    if (at == std::string::npos || channels <= 0 || rate <= 0) continue;
    const size_t samples = (wav.size() - at - 8) / 2;
    double sum = 0;
    for (size_t i = 0; i < samples; ++i) {
      int16_t s;
      std::memcpy(&s, wav.data() + at + 8 + 2 * i, 2);
      sum += static_cast<double>(s) * s;
    }
    heard.seconds = static_cast<double>(samples) / channels / rate;
    heard.rms = samples ? std::sqrt(sum / samples) : 0;
  }
  return heard;
}

int loopback_udp_socket(int* port) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

RawSip::RawSip() { fd_ = loopback_udp_socket(&port); }

RawSip::~RawSip() {
  close(fd_);
}

void RawSip::send(const std::string& message, int to_port) const {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(to_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(fd_, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
}

std::string RawSip::receive(double seconds) const {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(seconds * 1000)) <= 0) return "";
  char buffer[65536];
  const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
  return n > 0 ? std::string(buffer, n) : "";
}

std::string RawSip::final_response(const std::string& method, const std::string& call_id,
                                   double seconds) const {
  const gint64 deadline = g_get_monotonic_time() + static_cast<gint64>(seconds * 1e6);
  while (g_get_monotonic_time() < deadline) {
    const std::string m = receive((deadline - g_get_monotonic_time()) / 1e6);
    if (status_of(m) >= 200 && header(m, "CSeq").find(method) != std::string::npos &&
        header(m, "Call-ID") == call_id)
      return m;
  }
  return "";
}

std::string header(const std::string& message, const std::string& name) {
  std::istringstream lines(message);
  for (std::string line; std::getline(lines, line) && line != "\r";) {
    if (line.size() > name.size() &&
        g_ascii_strncasecmp(line.c_str(), name.c_str(), name.size()) == 0 &&
        line[name.size()] == ':') {
      std::string value = line.substr(name.size() + 1);
      while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
      while (!value.empty() && (value.back() == '\r')) value.pop_back();
      return value;
    }
  }
  return "";
}

int status_of(const std::string& response) {
  if (response.rfind("SIP/2.0 ", 0) != 0 || response.size() < 11) return 0;
  return std::atoi(response.c_str() + 8);
}

std::string body_of(const std::string& message) {
  const size_t at = message.find("\r\n\r\n");
  return at == std::string::npos ? "" : message.substr(at + 4);
}

std::string sdp_offer(int rtp_port, const std::string& direction, int version,
                      const std::string& formats) {
  return "v=0\r\no=- 1 " + std::to_string(version) +
         " IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " +
         std::to_string(rtp_port) + " RTP/AVP " + formats +
         "\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=" +
         direction + "\r\n";
}

std::string request(const RawSip& peer, const std::string& method, const std::string& uri,
                    const std::string& call_id, int cseq, const std::string& to,
                    const std::string& body, const std::string& headers) {
  static int branch = 0;
  std::string m =
      method + " " + uri + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:" + std::to_string(peer.port) +
      ";branch=z9hG4bK-test" + std::to_string(++branch) +
      "\r\nMax-Forwards: 70\r\nFrom: <sip:silent@127.0.0.1>;tag=t" + call_id + "\r\nTo: " + to +
      "\r\nCall-ID: " + call_id + "\r\nCSeq: " + std::to_string(cseq) + " " + method +
      "\r\nContact: <sip:silent@127.0.0.1:" + std::to_string(peer.port) + ">\r\n" + headers;
  if (!body.empty() && headers.find("Content-Type:") == std::string::npos)
    m += "Content-Type: application/sdp\r\n";
  return m + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string contact_uri(const std::string& response) {
  const std::string c = header(response, "Contact");
  const size_t open = c.find('<'), close = c.find('>');
  return open == std::string::npos ? c : c.substr(open + 1, close - open - 1);
}

std::string ok_to(const std::string& request) {
  std::string reply = "SIP/2.0 200 OK\r\n";
  for (const char* h : {"Via", "From", "To", "Call-ID", "CSeq"})
    reply += std::string(h) + ": " + header(request, h) + "\r\n";
  return reply + "Content-Length: 0\r\n\r\n";
}

void expect_bounded_backlog(const GatewayProcess& gw, int call, double max_held_s) {
  const double produced = gw.produced_seconds(call), dropped = gw.dropped_seconds(call);
  EXPECT_GT(produced, 0.0) << gw.log();
  EXPECT_LE(produced - dropped, max_held_s) << gw.log();
  if (produced > max_held_s + 1.0) {
    EXPECT_GT(dropped, 0.0) << gw.log();
  }
}

}  // namespace gwtest
