// What the gateway tests drive: the gateway and baresip as child processes (each bound to
// loopback, killed when the test ends, whether it passes or not), a raw SIP peer on UDP, and a
// small HTTP client for /metrics.
#pragma once

#include <gio/gio.h>

#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace gwtest {

std::string source_root();
// Polls `done` (iterating the default main context) until it is true or `seconds` pass.
bool wait_until(const std::function<bool()>& done, double seconds);
// A base port such that `count` consecutive ports are free on 127.0.0.1 (UDP and TCP).
int free_ports(int count);
bool udp_port_free(int port);
std::string read_file(const std::string& path);
// The caller's voice as signed 16-bit mono samples at `rate`: tests/data/speechlike.wav, 12 s.
std::string voice_pcm(int rate);
// A TCP connection to 127.0.0.1:`port`, -1 if refused.
int connect_tcp(int port);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

// A child process with its stdout and stderr in one log file. It gets `death_signal` when the
// test process dies.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path,
          int death_signal = SIGKILL);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  bool wait(double seconds);  // true once it has exited
  void signal(int sig);
  int exit_status() const;  // -1 unless it exited normally
  int pid() const;
  std::string log() const { return read_file(log_path_); }

 private:
  GSubprocess* process_ = nullptr;
  std::string log_path_;
  bool exited_ = false;
};

struct GatewayOptions {
  int max_calls = 4;  // 0: not given on the command line
  int rtp_pairs = 4;
  double rtp_timeout = 10;
  std::vector<std::string> extra;
  std::vector<std::string> wrapper;  // a command the gateway runs under (prlimit ...)
  bool audiosocket = false;          // open the AudioSocket door on a free port
  bool websocket = false;            // open the websocket listener (/media-stream)
};

class GatewayProcess {
 public:
  GatewayProcess(const TempDir& dir, const GatewayOptions& options);
  int sip_port = 0, rtp_min = 0, metrics_port = 0, audiosocket_port = 0, ws_port = 0;
  std::string uri(const std::string& transport = "") const;
  bool started();  // the "listening" lines of its doors came within 30 s
  std::string log() const { return process->log(); }
  bool wait_log(const std::string& text, double seconds = 10, int count = 1);
  struct HttpAnswer {
    int status = 0;  // 0: no answer
    std::string body;
  };
  HttpAnswer get(const std::string& path) const;  // GET on the metrics listener
  std::string metrics() const { return get("/metrics").body; }
  // Moshi's audio a call produced: its steps (from its summary line) times 80 ms; -1 if the
  // call has not ended.
  double produced_seconds(int call) const;
  // Moshi's voice a call dropped for a client that did not read (its summary line); -1 as above.
  double dropped_seconds(int call) const;
  double metric(const std::string& series) const;  // its value, NaN if absent
  std::unique_ptr<Process> process;

 private:
  double summary_number(int call, const std::string& unit) const;
};

// A call whose client stopped reading held at most `max_held_s` of Moshi's voice (what it made
// less what it dropped), and dropped some once it made more than that plus a second. A loaded
// machine makes less voice, never more held.
void expect_bounded_backlog(const GatewayProcess& gw, int call, double max_held_s);

struct CodecCase {
  const char* gateway;  // the gateway's name, as in its log ("PCMU/8000")
  const char* baresip;  // audio_codecs entry of baresip's account
  int rate, channels;   // what baresip's aufile source needs
};

// The caller's voice at `rate` and `channels`: tests/data/speechlike.wav converted once, and
// repeated to 12 s (baresip's aufile ends the call at the end of its file).
std::string voice_wav(int rate, int channels);

struct Heard {
  double seconds = 0, rms = 0;
};

// baresip calling `uri` for `seconds` (-t), playing a WAV and recording what it hears.
class Caller {
 public:
  Caller(const CodecCase& codec, const std::string& uri, int seconds);
  bool finish(double seconds) { return process->wait(seconds); }
  std::string log() const { return process->log(); }
  Heard heard() const;  // the decoded audio sndfile wrote
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<Process> process;
};

// A UDP socket bound to a free port of 127.0.0.1 (written to `port`).
int loopback_udp_socket(int* port);

// A SIP peer written by hand, to send what no phone would: silence, holds, garbage.
class RawSip {
 public:
  RawSip();
  ~RawSip();
  int port = 0;
  void send(const std::string& message, int to_port) const;
  std::string receive(double seconds) const;  // one datagram, "" on time-out
  // The next final response (>= 200) to `method` in call `call_id` (others are skipped).
  std::string final_response(const std::string& method, const std::string& call_id,
                             double seconds) const;

 private:
  int fd_ = -1;
};

std::string header(const std::string& message, const std::string& name);
int status_of(const std::string& response);
std::string body_of(const std::string& message);

// An SDP offer of PCMU (and telephone-event) at 127.0.0.1:`rtp_port` with `direction`.
std::string sdp_offer(int rtp_port, const std::string& direction, int version,
                      const std::string& formats = "0 101");
// A request from the raw peer; `to` is the To header (with the gateway's tag in a dialog).
// `headers` are added as they are (each ending in CRLF); a body is application/sdp unless
// `headers` has a Content-Type.
std::string request(const RawSip& peer, const std::string& method, const std::string& uri,
                    const std::string& call_id, int cseq, const std::string& to,
                    const std::string& body = "", const std::string& headers = "");
// The Request-URI inside a dialog: the gateway's Contact.
std::string contact_uri(const std::string& response);
// The 200 OK a peer sends to `request` (a BYE or an OPTIONS of the gateway).
std::string ok_to(const std::string& request);

}  // namespace gwtest
