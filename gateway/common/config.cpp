#include "common/config.h"

#include <glib.h>

#include <functional>
#include <memory>

#include "kyutai/error.h"
#include "common/ports.h"
#include "doors/sip/sdp.h"

namespace moshigw {

namespace {

using Setter = std::function<bool(Config&, const char*)>;

// One setting: its key in the [gateway] group of the file, which is also its flag (--key).
struct Setting {
  const char* key;
  const char* arg;
  const char* help;
  Setter set;
};

bool to_int(const char* text, int64_t min, int64_t max, int64_t* out) {
  return g_ascii_string_to_signed(text, 10, min, max, out, nullptr);
}

Setter int_setter(int Config::*field, int min, int max) {
  return [field, min, max](Config& c, const char* text) {
    int64_t value = 0;
    if (!to_int(text, min, max, &value)) return false;
    c.*field = static_cast<int>(value);
    return true;
  };
}

Setter string_setter(std::string Config::*field) {
  return [field](Config& c, const char* text) {
    c.*field = text;
    return true;
  };
}

// An IP address, not a host name: it is bound to (SIP and every call's RTP ports).
Setter address_setter(std::string Config::*field) {
  return [field](Config& c, const char* text) {
    if (!g_hostname_is_ip_address(text)) return false;
    c.*field = text;
    return true;
  };
}

Setter list_setter(std::vector<std::string> Config::*field) {
  return [field](Config& c, const char* text) {
    g_auto(GStrv) parts = g_strsplit(text, ",", -1);
    std::vector<std::string> items;
    for (char** p = parts; *p; ++p) {
      g_strstrip(*p);
      if (**p) items.emplace_back(*p);
    }
    if (items.empty()) return false;
    c.*field = items;
    return true;
  };
}

bool set_port_range(Config& c, const char* text) {
  g_auto(GStrv) parts = g_strsplit(text, "-", 2);
  int64_t min = 0, max = 0;
  if (!parts[0] || !parts[1] || !to_int(g_strstrip(parts[0]), 1024, 65534, &min) ||
      !to_int(g_strstrip(parts[1]), 1025, 65535, &max) || max < min + 1)
    return false;
  c.rtp_port_min = static_cast<int>(min);
  c.rtp_port_max = static_cast<int>(max);
  return true;
}

// Seconds in (0, max], with a fraction.
Setter seconds_setter(double Config::*field, double max) {
  return [field, max](Config& c, const char* text) {
    char* end = nullptr;
    const double value = g_ascii_strtod(text, &end);
    if (end == text || *end || !(value > 0 && value <= max)) return false;
    c.*field = value;
    return true;
  };
}

// Parsed once, here, by the library's table: a name it refuses throws its ConfigError, which
// names the accepted values.
bool set_weights(Config& c, const char* text) {
  c.weights = kyutai::parse_weight_format(text);
  return true;
}

bool set_seed(Config& c, const char* text) {
  int64_t value = 0;
  if (!to_int(text, -1, G_MAXINT64, &value)) return false;
  c.seed = value;
  return true;
}

// The settings of Moshi itself, of SIP and media, and for operators, in --help's order.
std::vector<Setting> moshi_settings() {
  return {
      {"model", "MODEL",
       "Moshi repository: a directory laid out as Kyutai's, or a repository id in the local "
       "Hugging Face cache (default kyutai/moshiko-pytorch-bf16)",
       string_setter(&Config::model)},
      {"weights", "FORMAT",
       "weight format of the language model: auto (default: bfloat16 on a GPU, int8 on a "
       "CPU), float32, bfloat16, int8 or int4 (int8 and int4 on the CPU only)",
       set_weights},
      {"device", "DEVICE", "cpu (default), cuda or cuda:N", string_setter(&Config::device)},
      {"threads", "N", "compute threads for the whole process, 0 for one per core (default)",
       int_setter(&Config::threads, 0, 1024)},
      {"seed", "N",
       "sampling seed: call N of this process gets seed+N; -1 (default) for a random seed per "
       "call",
       set_seed},
  };
}

std::vector<Setting> sip_settings() {
  return {
      {"listen", "ADDRESS",
       "IP address the SIP transports and the RTP ports bind to (default 127.0.0.1)",
       address_setter(&Config::listen_address)},
      {"sip-port", "PORT", "SIP port (default 5060)", int_setter(&Config::sip_port, 1, 65535)},
      {"transports", "LIST", "SIP transports, udp and/or tcp (default udp,tcp)",
       list_setter(&Config::transports)},
      {"media-address", "ADDRESS",
       "address for RTP, put in the SDP answers (default: the listen address, or the first "
       "non-loopback IPv4 address when listening on 0.0.0.0)",
       string_setter(&Config::media_address)},
      {"rtp-ports", "MIN-MAX",
       "RTP port range; each call takes an even port for RTP and the next for RTCP "
       "(default 20000-20999)",
       set_port_range},
      {"max-calls", "N", "concurrent calls; more are answered 486 Busy Here (default 4)",
       int_setter(&Config::max_calls, 1, 10000)},
      {"rtp-timeout", "SECONDS",
       "hang up (BYE) a call whose RTP stops for this long, unless on hold (default 10)",
       seconds_setter(&Config::rtp_timeout_s, 3600)},
      {"hold-timeout", "SECONDS", "hang up a call that stays on hold this long (default 600)",
       seconds_setter(&Config::hold_timeout_s, 86400)},
      {"probe-interval", "SECONDS",
       "while a call is on hold, probe the caller with OPTIONS this often; no answer by the next "
       "probe, or 408/481, hangs up (default 30)",
       seconds_setter(&Config::probe_interval_s, 3600)},
  };
}

std::vector<Setting> door_settings() {
  return {
      {"audiosocket-port", "PORT",
       "TCP port of the Asterisk AudioSocket door, on the listen address; 0 for none (default 0)",
       int_setter(&Config::audiosocket_port, 0, 65535)},
      {"ws-port", "PORT",
       "HTTP/websocket port (Kyutai's protocol at /api/chat, the media stream at "
       "/media-stream, --static at /), on the listen address; 0 for none (default 0)",
       int_setter(&Config::ws_port, 0, 65535)},
      {"auth-token", "TOKEN",
       "secret the websocket doors require, as ?auth_token=TOKEN or 'Authorization: Bearer "
       "TOKEN' (default: none required)",
       string_setter(&Config::auth_token)},
      {"tls-cert", "FILE",
       "PEM certificate (chain) for the websocket listener: it then serves https and wss only; "
       "with tls-key",
       string_setter(&Config::tls_cert)},
      {"tls-key", "FILE", "PEM private key of tls-cert", string_setter(&Config::tls_key)},
      {"static", "DIR",
       "serve the files of DIR at / on the websocket listener, such as Kyutai's built web client "
       "(its client/dist); with ws-port (default: none)",
       string_setter(&Config::static_dir)},
  };
}

std::vector<Setting> operator_settings() {
  return {
      {"codecs", "LIST",
       "codecs in order of preference, from opus, G722, PCMU, PCMA (default "
       "opus,G722,PCMU,PCMA)",
       list_setter(&Config::codecs)},
      {"transcript-dir", "DIR", "write Moshi's text of each call to DIR/call-<id>.txt",
       string_setter(&Config::transcript_dir)},
      {"stt-model", "MODEL",
       "also write the caller's words into the transcript, transcribed by this Kyutai STT model "
       "(a repository directory or cached id, such as kyutai/stt-1b-en_fr); with transcript-dir "
       "(default: none)",
       string_setter(&Config::stt_model)},
      {"metrics-address", "ADDRESS", "address of the HTTP /metrics endpoint (default 127.0.0.1)",
       string_setter(&Config::metrics_address)},
      {"metrics-port", "PORT", "port of the HTTP /metrics endpoint, 0 for none (default 9090)",
       int_setter(&Config::metrics_port, 0, 65535)},
      {"tcp-idle-timeout", "SECONDS",
       "close SIP and /metrics TCP connections idle this long (default 60)",
       seconds_setter(&Config::tcp_idle_timeout_s, 86400)},
      {"max-connections", "N",
       "TCP connections each listener (SIP, /metrics) holds at once; more are closed at once "
       "(default 64)",
       int_setter(&Config::max_connections, 1, 100000)},
  };
}

const std::vector<Setting>& settings() {
  static const std::vector<Setting> all = [] {
    std::vector<Setting> v = moshi_settings();
    for (auto part : {sip_settings(), door_settings(), operator_settings()})
      v.insert(v.end(), part.begin(), part.end());
    return v;
  }();
  return all;
}

bool apply(Config& config, const Setting& s, const char* value, const char* origin,
           std::string& error) {
  std::string why;
  try {
    if (s.set(config, value)) return true;
  } catch (const kyutai::ConfigError& e) {
    why = std::string(": ") + e.what();
  }
  error = std::string("invalid value '") + value + "' for '" + s.key + "' (" + origin + ")" + why;
  return false;
}

bool load_file(const char* path, Config& config, std::string& error) {
  g_autoptr(GKeyFile) file = g_key_file_new();
  g_autoptr(GError) gerror = nullptr;
  if (!g_key_file_load_from_file(file, path, G_KEY_FILE_NONE, &gerror)) {
    error = std::string("cannot read ") + path + ": " + gerror->message;
    return false;
  }
  if (!g_key_file_has_group(file, "gateway")) {
    error = std::string(path) + ": no [gateway] group (its settings would all be ignored)";
    return false;
  }
  g_auto(GStrv) keys = g_key_file_get_keys(file, "gateway", nullptr, nullptr);
  for (char** key = keys; key && *key; ++key) {
    const Setting* match = nullptr;
    for (const Setting& s : settings())
      if (g_str_equal(s.key, *key)) match = &s;
    if (!match) {
      error = std::string(path) + ": unknown key '" + *key + "' in [gateway]";
      return false;
    }
    g_autofree char* value = g_key_file_get_string(file, "gateway", *key, nullptr);
    if (!apply(config, *match, value ? value : "", path, error)) return false;
  }
  return true;
}

const char* const kDescription =
    "Every option may also be set in the [gateway] group of the --config file, with the\n"
    "option's name as key (for example 'max-calls=8'); a flag overrides the file.\n"
    "See docs/GATEWAY.md.";

}  // namespace

bool load_config(int argc, char** argv, Config& config, std::string& error) {
  const auto& all = settings();
  std::vector<char*> values(all.size(), nullptr);
  std::vector<GOptionEntry> entries;
  char* config_path = nullptr;
  entries.push_back({"config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
                     "INI file with a [gateway] group (keys as the long options below)", "FILE"});
  for (size_t i = 0; i < all.size(); ++i)
    entries.push_back({all[i].key, 0, 0, G_OPTION_ARG_STRING, &values[i], all[i].help, all[i].arg});
  entries.push_back({nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr});

  g_autoptr(GOptionContext) context =
      g_option_context_new("- answers calls (SIP, AudioSocket, media streams) with Moshi, one conversation per call");
  g_option_context_add_main_entries(context, entries.data(), nullptr);
  g_option_context_set_description(context, kDescription);
  g_autoptr(GError) gerror = nullptr;
  bool ok = g_option_context_parse(context, &argc, &argv, &gerror);
  if (!ok) error = gerror->message;
  if (ok && argc > 1) {
    error = std::string("unexpected argument '") + argv[1] + "'";
    ok = false;
  }
  if (ok && config_path) ok = load_file(config_path, config, error);
  for (size_t i = 0; ok && i < all.size(); ++i)
    if (values[i]) ok = apply(config, all[i], values[i], "command line", error);
  for (char* v : values) g_free(v);
  g_free(config_path);
  return ok && validate_config(config, error);
}

bool validate_config(const Config& config, std::string& error) {
  for (const std::string& codec : config.codecs) {
    if (!find_codec(codec)) {
      error = "unknown codec '" + codec + "' (known: opus, G722, PCMU, PCMA)";
      return false;
    }
  }
  for (const std::string& t : config.transports) {
    if (t != "udp" && t != "tcp") {
      error = "unknown transport '" + t + "' (known: udp, tcp)";
      return false;
    }
  }
  if (!config.transcript_dir.empty() &&
      !g_file_test(config.transcript_dir.c_str(), G_FILE_TEST_IS_DIR)) {
    error = "transcript-dir '" + config.transcript_dir + "' is not a directory";
    return false;
  }
  if (!config.stt_model.empty() && config.transcript_dir.empty()) {
    error = "stt-model needs transcript-dir: the caller's words go into the transcripts";
    return false;
  }
  if (!config.static_dir.empty() && !g_file_test(config.static_dir.c_str(), G_FILE_TEST_IS_DIR)) {
    error = "static '" + config.static_dir + "' is not a directory";
    return false;
  }
  if (!config.static_dir.empty() && config.ws_port == 0) {
    error = "static needs ws-port: the files are served on the websocket listener";
    return false;
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    error = "tls-cert and tls-key go together";
    return false;
  }
  if (PortPairs(config.rtp_port_min, config.rtp_port_max).count() < 1) {
    error = "the RTP port range holds no port pair";
    return false;
  }
  return true;
}

}  // namespace moshigw
