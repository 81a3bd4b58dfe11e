#include "call/rtp_media.h"

#include <gst/net/gstnetaddressmeta.h>
#include <gst/rtp/gstrtpbuffer.h>

#include <algorithm>

#include "common/connections.h"

namespace moshigw {

namespace {

// "address:port" as address_text() writes it, from the SDP's literal address.
std::string source_text(const std::string& address, int port) {
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string(address.c_str());
  if (!inet) return "";
  g_autofree char* ip = g_inet_address_to_string(inet);
  return std::string(ip) + ":" + std::to_string(port);
}

GstElement* child(GstElement* bin, const char* name) {
  GstElement* element = gst_bin_get_by_name(GST_BIN(bin), name);
  if (element) gst_object_unref(element);
  return element;
}

}  // namespace

RtpMedia::RtpMedia(const Offer& offer, std::unique_ptr<RtpPorts> ports)
    : offer_(offer), ports_(std::move(ports)) {
  update(offer);
}

std::string RtpMedia::source_description() const {
  const Codec& c = *offer_.codec;
  g_autofree char* text = g_strdup_printf(
      "udpsrc name=rtpsrc close-socket=false caps=\"application/x-rtp,media=audio,"
      "clock-rate=%d,encoding-name=%s,payload=%d\" ! rtpjitterbuffer latency=60 ! %s ! "
      "audioconvert ! audioresample",
      c.clock_rate, c.caps_name, offer_.pt, c.depay);
  return text;
}

std::string RtpMedia::sink_description() const {
  const Codec& c = *offer_.codec;
  g_autofree char* pay = g_strdup_printf(c.pay, offer_.pt);
  g_autofree char* text = g_strdup_printf(
      "audioconvert ! audioresample ! audio/x-raw,rate=%d,channels=1 ! %s ! valve name=hold ! "
      "udpsink name=rtpsink close-socket=false async=false",
      c.audio_rate, pay);
  return text;
}

// RTP from the caller is filtered (only the caller's source and the negotiated payload type go
// on: DTMF telephone-events and strays are dropped) and timed.
bool RtpMedia::attach(GstElement* pipeline, std::string&) {
  pipeline_ = pipeline;
  g_object_set(child(pipeline, "rtpsrc"), "socket", ports_->rtp, nullptr);
  g_object_set(child(pipeline, "rtpsink"), "socket", ports_->rtp, nullptr);
  g_autoptr(GstPad) rtp = gst_element_get_static_pad(child(pipeline, "rtpsrc"), "src");
  gst_pad_add_probe(rtp, GST_PAD_PROBE_TYPE_BUFFER, on_rtp, this, nullptr);
  update(offer_);
  return true;
}

// The ports go with the pipeline: the next call may take them at once.
void RtpMedia::detach() {
  pipeline_ = nullptr;
  ports_.reset();
}

std::string RtpMedia::codec() const {
  return std::string(offer_.codec->name) + "/" + std::to_string(offer_.codec->clock_rate);
}

std::string RtpMedia::dropped() const {
  return ", " + std::to_string(foreign_packets_.load()) + " RTP packets from other sources dropped";
}

void RtpMedia::update(const Offer& offer) {
  const bool was_sending = offer_.direction & kSendOnly;
  offer_.remote_address = offer.remote_address;
  offer_.remote_port = offer.remote_port;
  offer_.direction = offer.direction;
  {
    std::lock_guard<std::mutex> lock(source_mutex_);
    expected_source_ = source_text(offer.remote_address, offer.remote_port);
    source_.clear();  // a new address: the first source seen is taken again
  }
  const gint64 now = g_get_monotonic_time();
  if (!(offer.direction & kSendOnly) && held_since_us_ == 0) held_since_us_ = last_probe_us_ = now;
  if (offer.direction & kSendOnly) held_since_us_ = probe_sent_us_ = 0;
  if (!pipeline_) return;
  // Hold: the caller does not want to receive, so Moshi's voice is dropped before the socket.
  // The sink always has the offer's address (0.0.0.0 on an RFC 2543 hold), which negotiate()
  // checked is a literal of the socket's family; its default, localhost, may resolve to ::1.
  g_object_set(child(pipeline_, "hold"), "drop", !(offer.direction & kRecvOnly), nullptr);
  g_object_set(child(pipeline_, "rtpsink"), "host", offer.remote_address.c_str(), "port",
               offer.remote_port, nullptr);
  // Resumed: the time-out counts from now, not from the last packet before the hold.
  if (!was_sending && (offer.direction & kSendOnly)) last_rtp_us_ = now;
}

const char* RtpMedia::overdue(gint64 now_us, gint64 started_us, const Config& config) const {
  const auto us = [](double seconds) { return static_cast<gint64>(seconds * G_USEC_PER_SEC); };
  if (offer_.direction & kSendOnly)
    return now_us - std::max(started_us, last_rtp_us_.load()) > us(config.rtp_timeout_s)
               ? "rtp-timeout"
               : nullptr;
  if (now_us - held_since_us_ > us(config.hold_timeout_s)) return "hold-timeout";
  if (probe_sent_us_ && now_us - probe_sent_us_ > us(config.probe_interval_s))
    return "probe-timeout";
  return nullptr;
}

bool RtpMedia::probe_due(gint64 now_us, const Config& config) {
  if (held_since_us_ == 0 || probe_sent_us_) return false;
  if (now_us - last_probe_us_ < static_cast<gint64>(config.probe_interval_s * G_USEC_PER_SEC))
    return false;
  probe_sent_us_ = last_probe_us_ = now_us;
  return true;
}

// Any final answer shows the caller is there (405 or 501: it just does not do OPTIONS), but 408
// (no answer at all) and 481 (it knows no such call) say the dialog is gone (RFC 5057).
bool RtpMedia::probe_answered(int status) {
  probe_sent_us_ = 0;
  return status != 408 && status != 481;
}

// The caller's SDP address always wins; any other source is taken only while none is (NAT).
bool RtpMedia::from_caller(GstBuffer* rtp) {
  GstNetAddressMeta* meta = gst_buffer_get_net_address_meta(rtp);
  const std::string from = meta ? address_text(meta->addr) : "";
  std::lock_guard<std::mutex> lock(source_mutex_);
  if (from == source_) return true;
  if (from == expected_source_ || source_.empty()) {
    if (from != expected_source_)
      g_message("RTP from %s, not %s as its SDP says: taken (NAT)", from.c_str(),
                expected_source_.c_str());
    source_ = from;
    return true;
  }
  foreign_packets_++;
  return false;
}

GstPadProbeReturn RtpMedia::on_rtp(GstPad*, GstPadProbeInfo* info, gpointer self) {
  auto* media = static_cast<RtpMedia*>(self);
  if (!media->from_caller(GST_PAD_PROBE_INFO_BUFFER(info))) return GST_PAD_PROBE_DROP;
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (!gst_rtp_buffer_map(GST_PAD_PROBE_INFO_BUFFER(info), GST_MAP_READ, &rtp))
    return GST_PAD_PROBE_DROP;
  const int pt = gst_rtp_buffer_get_payload_type(&rtp);
  gst_rtp_buffer_unmap(&rtp);
  if (pt != media->offer_.pt) return GST_PAD_PROBE_DROP;
  media->last_rtp_us_ = g_get_monotonic_time();
  return GST_PAD_PROBE_OK;
}

}  // namespace moshigw
