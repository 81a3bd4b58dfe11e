#include "gateway.h"

#include <glib-unix.h>

#include <algorithm>
#include <csignal>

#include "call/moshibin.h"
#include "common/connections.h"
#include "doors/audiosocket.h"
#include "doors/kyutai_chat.h"
#include "doors/media_stream.h"
#include "doors/sip/sip_door.h"
#include "doors/web_server.h"

namespace moshigw {

namespace {

constexpr guint kTimerMs = 250;
constexpr gint64 kShutdownGraceUs = 3 * G_USEC_PER_SEC;

}  // namespace

Gateway::Gateway(Config config) : config_(std::move(config)) {}

Gateway::~Gateway() {
  doors_.clear();
  if (timer_) g_source_remove(timer_);
  if (warm_) {
    gst_element_set_state(warm_, GST_STATE_NULL);
    gst_object_unref(warm_);
  }
  metrics_server_.reset();
  if (loop_) g_main_loop_unref(loop_);
}

bool Gateway::start(std::string& error) {
  loop_ = g_main_loop_new(nullptr, FALSE);
  fit_connections_to_files();
  if (!load_model(error)) return false;
  // /metrics and /healthz listen before the doors announce themselves, so that whoever waits
  // for a door finds them up; /healthz says 503 until every door is open.
  if (config_.metrics_port > 0) {
    metrics_server_ = std::make_unique<MetricsServer>(
        metrics_, [this] { return live(); }, config_.max_connections, config_.tcp_idle_timeout_s);
    if (!metrics_server_->listen(config_.metrics_address, config_.metrics_port, error))
      return false;
  }
  if (!open_doors(error)) return false;
  doors_ready_ = true;
  return true;
}

// SIP is always open; the other doors when their port is set. The websocket doors share one
// HTTP listener, where each registers its path.
bool Gateway::open_doors(std::string& error) {
  doors_.push_back(std::make_unique<SipDoor>(registry_));
  if (config_.audiosocket_port > 0) doors_.push_back(std::make_unique<AudioSocketDoor>(registry_));
  if (config_.ws_port > 0) {
    auto web = std::make_shared<WebServer>(config_);
    doors_.push_back(std::make_unique<KyutaiChatDoor>(registry_, web));
    doors_.push_back(std::make_unique<MediaStreamDoor>(registry_, web));
    if (!web->listen(error)) return false;
  }
  for (auto& door : doors_) {
    if (!door->open(error)) return false;
    metrics_.open_door(door->name());
  }
  return true;
}

// The TCP listeners must never take every file handle: what the process and the calls need
// (a generous 64, and 16 a call) is set aside, and each of the TCP listeners (SIP, /metrics and
// each other door) gets at most its share of the rest.
void Gateway::fit_connections_to_files() {
  const long files = raise_open_file_limit();
  if (files < 0) return;
  const long listeners = 2 + (config_.audiosocket_port > 0) + (config_.ws_port > 0);
  const long spare = files - 64 - 16L * config_.max_calls;
  const int fits = static_cast<int>(std::max(1L, spare / listeners));
  g_message("at most %ld open files", files);
  if (config_.max_connections <= fits) return;
  g_message("max-connections lowered from %d to %d to fit the open-file limit of %ld",
            config_.max_connections, fits, files);
  config_.max_connections = fits;
}

// A moshibin held in PAUSED loads the model once, checks it before any call comes, and keeps the
// weights in the process-wide cache that every call's moshibin then shares.
bool Gateway::load_model(std::string& error) {
  GstElement* moshi = gst_element_factory_make("moshibin", "moshi");
  if (!moshi) {
    error = "no moshibin element: install gst-moshi, or set GST_PLUGIN_PATH to the build tree";
    return false;
  }
  warm_ = gst_pipeline_new("warm");
  gst_bin_add(GST_BIN(warm_), moshi);
  configure_moshibin(moshi, config_);
  const gint64 begin = g_get_monotonic_time();
  if (gst_element_set_state(warm_, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE) {
    gint loaded = 0;  // what 'auto' chose reads back once loaded
    g_object_get(moshi, "weights", &loaded, nullptr);
    g_message("model %s loaded in %.1f s (%s, %s weights)", config_.model.c_str(),
              (g_get_monotonic_time() - begin) / 1e6, config_.device.c_str(),
              kyutai::weight_format_name(static_cast<kyutai::WeightFormat>(loaded)));
    const StepReading none = read_steps(moshi);  // the histogram's buckets, from the library
    metrics_.add_steps(none.bounds_ms, none.counts, none.total_ms);
    return true;
  }
  g_autoptr(GstBus) bus = gst_element_get_bus(warm_);
  g_autoptr(GstMessage) message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  g_autoptr(GError) gerror = nullptr;
  g_autofree char* debug = nullptr;
  if (message) gst_message_parse_error(message, &gerror, &debug);
  error = "cannot load the model '" + config_.model +
          "': " + (gerror ? gerror->message : "unknown error") +
          (debug ? std::string(" (") + debug + ")" : "");
  return false;
}

void Gateway::run() {
  auto on_signal = [](gpointer self) -> gboolean {
    static_cast<Gateway*>(self)->shutdown();
    return G_SOURCE_CONTINUE;
  };
  const guint sigint = g_unix_signal_add(SIGINT, on_signal, this);
  const guint sigterm = g_unix_signal_add(SIGTERM, on_signal, this);
  timer_ = g_timeout_add(
      kTimerMs,
      [](gpointer self) -> gboolean {
        static_cast<Gateway*>(self)->tick();
        return G_SOURCE_CONTINUE;
      },
      this);
  g_main_loop_run(loop_);
  g_source_remove(sigint);
  g_source_remove(sigterm);
  g_message("stopped: %d calls left", registry_.active());
}

void Gateway::tick() {
  const gint64 now = g_get_monotonic_time();
  for (auto& door : doors_) door->tick(now);
}

// Every call is hung up; the doors close once their calls are gone (or after a grace time).
void Gateway::shutdown() {
  if (registry_.shutting_down()) return;
  registry_.begin_shutdown();
  g_message("shutting down: hanging up %d calls", registry_.active());
  for (auto& door : doors_) door->hang_up_all();
  const gint64 deadline = g_get_monotonic_time() + kShutdownGraceUs;
  struct Wait {
    Gateway* self;
    gint64 deadline;
  };
  g_timeout_add_full(
      G_PRIORITY_DEFAULT, 50,
      [](gpointer data) -> gboolean {
        auto* wait = static_cast<Wait*>(data);
        const auto& doors = wait->self->doors_;
        const bool idle = std::all_of(doors.begin(), doors.end(),
                                      [](const auto& door) { return door->idle(); });
        if (!idle && g_get_monotonic_time() < wait->deadline) return G_SOURCE_CONTINUE;
        wait->self->close_doors();
        return G_SOURCE_REMOVE;
      },
      new Wait{this, deadline}, [](gpointer data) { delete static_cast<Wait*>(data); });
}

// The loop ends once every door has closed.
void Gateway::close_doors() {
  doors_open_ = doors_.size();
  for (auto& door : doors_)
    door->close([this] {
      if (--doors_open_ == 0) g_main_loop_quit(loop_);
    });
}

Metrics::Live Gateway::live() {
  Metrics::Live live;
  live.active_calls = registry_.active();
  live.ready = warm_ && doors_ready_ && !registry_.shutting_down();
  live.real_time_factor = registry_.collect_steps();
  return live;
}

}  // namespace moshigw
