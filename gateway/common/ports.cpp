#include "common/ports.h"

#include <algorithm>

namespace moshigw {

namespace {

// A UDP socket bound to address:port without SO_REUSEADDR, so a port in use is refused.
GSocket* bind_udp(GInetAddress* address, int port) {
  const GSocketFamily family = g_inet_address_get_family(address);
  GSocket* socket = g_socket_new(family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, nullptr);
  if (!socket) return nullptr;
  g_autoptr(GSocketAddress) where = g_inet_socket_address_new(address, port);
  if (!g_socket_bind(socket, where, FALSE, nullptr)) {
    g_object_unref(socket);
    return nullptr;
  }
  return socket;
}

}  // namespace

RtpPorts::~RtpPorts() {
  for (GSocket* s : {rtp, rtcp}) {
    if (!s) continue;
    g_socket_close(s, nullptr);
    g_object_unref(s);
  }
}

PortPairs::PortPairs(int min, int max)
    : first_(min + (min & 1)), count_(std::max(0, (max - first_ + 1) / 2)) {}

PortPool::PortPool(std::string address, int min, int max)
    : address_(std::move(address)), pairs_(min, max) {}

std::unique_ptr<RtpPorts> PortPool::allocate() {
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string(address_.c_str());
  if (!address) return nullptr;
  const int pairs = pairs_.count();
  for (int i = 0; i < pairs; ++i) {
    const int port = pairs_.rtp_port((next_ + i) % pairs);
    auto ports = std::make_unique<RtpPorts>();
    ports->rtp = bind_udp(address, port);
    ports->rtcp = ports->rtp ? bind_udp(address, port + 1) : nullptr;
    if (!ports->rtcp) continue;
    ports->port = port;
    next_ = (next_ + i + 1) % pairs;
    return ports;
  }
  return nullptr;
}

}  // namespace moshigw
