#include "common/metrics.h"

#include <glib.h>

#include <cstring>

#include "common/connections.h"

namespace moshigw {

namespace {

// Both endpoints are read-only: anything but GET and HEAD gets 405.
bool read_only(SoupServerMessage* msg) {
  const char* method = soup_server_message_get_method(msg);
  if (g_strcmp0(method, "GET") == 0 || g_strcmp0(method, "HEAD") == 0) return true;
  soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, nullptr);
  return false;
}

}  // namespace

void Metrics::open_door(const std::string& door) {
  answered_[door] += 0;
  const char* const sip[] = {"busy", "body", "codec", "sdp", "ports", "media", "shutdown"};
  const char* const other[] = {"busy", "media", "shutdown"};
  if (door == "sip")
    for (const char* reason : sip) rejected_[{door, reason}] += 0;
  else
    for (const char* reason : other) rejected_[{door, reason}] += 0;
}

void Metrics::call_answered(const std::string& door) {
  answered_[door]++;
}

void Metrics::call_rejected(const std::string& door, const std::string& reason) {
  rejected_[{door, reason}]++;
}

void Metrics::call_ended(const std::string& door, const std::string& reason) {
  ended_[{door, reason}]++;
}

void Metrics::add_steps(const std::vector<double>& bounds_ms,
                        const std::vector<uint64_t>& counts, double total_ms) {
  if (bounds_ms_.empty()) {
    bounds_ms_ = bounds_ms;
    buckets_.assign(bounds_ms.size() + 1, 0);
  }
  if (bounds_ms != bounds_ms_ || counts.size() != buckets_.size()) {
    g_warning("step histogram with other buckets ignored");
    return;
  }
  for (size_t i = 0; i < counts.size(); ++i) buckets_[i] += counts[i];
  step_sum_ms_ += total_ms;
}

std::string Metrics::render(const Live& live) const {
  g_autoptr(GString) out = g_string_new(nullptr);
  g_string_append_printf(out,
                         "# HELP moshi_gateway_active_calls Calls in progress.\n"
                         "# TYPE moshi_gateway_active_calls gauge\n"
                         "moshi_gateway_active_calls %d\n"
                         "# HELP moshi_gateway_calls_total Calls answered, by front door.\n"
                         "# TYPE moshi_gateway_calls_total counter\n",
                         live.active_calls);
  for (const auto& [door, count] : answered_)
    g_string_append_printf(out, "moshi_gateway_calls_total{door=\"%s\"} %" G_GUINT64_FORMAT "\n",
                           door.c_str(), count);
  render_counter(out, "moshi_gateway_calls_rejected_total",
                 "Calls refused, by front door and reason.", rejected_);
  render_counter(out, "moshi_gateway_calls_ended_total",
                 "Answered calls that ended, by front door and reason.", ended_);
  render_steps(out);
  char rtf[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_dtostr(rtf, sizeof rtf, live.real_time_factor);
  g_string_append_printf(out,
                         "# HELP moshi_gateway_real_time_factor Median step time over the frame "
                         "time, of the slowest call in progress (above 1: slower than real "
                         "time).\n"
                         "# TYPE moshi_gateway_real_time_factor gauge\n"
                         "moshi_gateway_real_time_factor %s\n",
                         rtf);
  return out->str;
}

void Metrics::render_counter(GString* out, const char* name, const char* help,
                             const std::map<Key, uint64_t>& counts) {
  g_string_append_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
  for (const auto& [key, count] : counts)
    g_string_append_printf(out, "%s{door=\"%s\",reason=\"%s\"} %" G_GUINT64_FORMAT "\n", name,
                           key.first.c_str(), key.second.c_str(), count);
}

void Metrics::render_steps(GString* out) const {
  g_string_append(out,
                  "# HELP moshi_gateway_step_seconds Time of one Moshi step (80 ms of audio).\n"
                  "# TYPE moshi_gateway_step_seconds histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    cumulative += buckets_[i];
    char le[G_ASCII_DTOSTR_BUF_SIZE] = "+Inf";
    if (i < bounds_ms_.size()) g_ascii_formatd(le, sizeof le, "%g", bounds_ms_[i] / 1000);
    g_string_append_printf(out,
                           "moshi_gateway_step_seconds_bucket{le=\"%s\"} %" G_GUINT64_FORMAT "\n",
                           le, cumulative);
  }
  char sum[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_dtostr(sum, sizeof sum, step_sum_ms_ / 1000);
  g_string_append_printf(out,
                         "moshi_gateway_step_seconds_sum %s\n"
                         "moshi_gateway_step_seconds_count %" G_GUINT64_FORMAT "\n",
                         sum, cumulative);
}

MetricsServer::MetricsServer(const Metrics& metrics, std::function<Metrics::Live()> live,
                             int max_connections, double idle_timeout_s)
    : metrics_(metrics),
      live_(std::move(live)),
      max_connections_(max_connections),
      idle_timeout_s_(idle_timeout_s) {}

MetricsServer::~MetricsServer() {
  listener_.reset();
  if (server_) {
    soup_server_disconnect(server_);
    g_object_unref(server_);
  }
}

bool MetricsServer::listen(const std::string& address, int port, std::string& error) {
  server_ = soup_server_new("server-header", "moshi-gateway", nullptr);
  soup_server_add_handler(server_, "/metrics", handle, this, nullptr);
  soup_server_add_handler(server_, "/healthz", handle_health, this, nullptr);
  listener_ = std::make_unique<HttpListener>(server_, max_connections_, idle_timeout_s_);
  if (listener_->listen(address, port, error)) return true;
  error = "cannot serve metrics: " + error;
  return false;
}

void MetricsServer::handle(SoupServer*, SoupServerMessage* msg, const char*, GHashTable*,
                           gpointer self) {
  auto* server = static_cast<MetricsServer*>(self);
  if (!read_only(msg)) return;
  const std::string body = server->metrics_.render(server->live_());
  soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
  soup_server_message_set_response(msg, "text/plain; version=0.0.4; charset=utf-8",
                                   SOUP_MEMORY_COPY, body.data(), body.size());
}

// 503 while shutting down, so that a load balancer stops sending calls before the process goes.
void MetricsServer::handle_health(SoupServer*, SoupServerMessage* msg, const char*, GHashTable*,
                                  gpointer self) {
  if (!read_only(msg)) return;
  const bool ready = static_cast<MetricsServer*>(self)->live_().ready;
  const char* body = ready ? "ok\n" : "unavailable\n";
  soup_server_message_set_status(msg, ready ? SOUP_STATUS_OK : SOUP_STATUS_SERVICE_UNAVAILABLE,
                                 nullptr);
  soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_STATIC, body,
                                   strlen(body));
}

}  // namespace moshigw
