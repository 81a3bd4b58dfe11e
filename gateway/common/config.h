// The gateway's settings: defaults, an optional INI file ([gateway] group) and command-line flags,
// in that order of precedence (a flag beats the file, the file beats the default).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kyutai/weights.h"

namespace moshigw {

struct Config {
  // Moshi
  std::string model = "kyutai/moshiko-pytorch-bf16";
  kyutai::WeightFormat weights = kyutai::WeightFormat::Auto;  // moshibin's 'weights'
  std::string device = "cpu";
  int threads = 0;
  int64_t seed = -1;  // -1: a random seed per call; else call N gets seed + N
  // SIP
  std::string listen_address = "127.0.0.1";
  int sip_port = 5060;
  std::vector<std::string> transports = {"udp", "tcp"};
  // Media
  std::string media_address;  // address in the SDP answers (RTP binds to listen_address)
  int rtp_port_min = 20000;
  int rtp_port_max = 20999;
  int max_calls = 4;
  double rtp_timeout_s = 10.0;
  // A call on hold sends no RTP: it is probed with OPTIONS every probe_interval_s (a probe left
  // unanswered until the next, or answered 408/481, ends it) and lasts at most hold_timeout_s.
  double hold_timeout_s = 600.0;
  double probe_interval_s = 30.0;
  std::vector<std::string> codecs = {"opus", "G722", "PCMU", "PCMA"};
  // Front doors besides SIP (0: closed), on listen_address. The websocket doors take
  // auth_token, when set, as ?auth_token= or "Authorization: Bearer".
  int audiosocket_port = 0;
  int ws_port = 0;
  std::string auth_token;
  std::string tls_cert, tls_key;  // PEM files: the websocket listener speaks TLS (wss://)
  std::string static_dir;  // served at / on the websocket listener (Kyutai's web client)
  // Operators
  std::string transcript_dir;  // empty: no transcripts
  std::string stt_model;       // Kyutai STT for the caller's words in the transcript; empty: none
  std::string metrics_address = "127.0.0.1";
  int metrics_port = 9090;  // 0: no metrics endpoint
  // TCP connections (SIP and /metrics): idle ones are closed, and each listener holds at most
  // max_connections at once.
  double tcp_idle_timeout_s = 60.0;
  int max_connections = 64;
};

// Fills `config` from argv and the file named by --config. Returns false and sets `error` on a
// bad flag, file or value. --help prints the options and exits.
bool load_config(int argc, char** argv, Config& config, std::string& error);

// Checks values that flags and files cannot check by type: ranges, codec and transport names.
bool validate_config(const Config& config, std::string& error);

}  // namespace moshigw
