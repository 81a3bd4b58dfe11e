#include "raw_websocket.h"

#include <arpa/inet.h>
#include <glib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace gwtest {

namespace {

constexpr uint8_t kMask[4] = {0x12, 0x34, 0x56, 0x78};

// The frame header of a client: FIN, `opcode`, the mask bit and the length in its shortest form.
std::string header(uint8_t opcode, uint64_t length, bool fin = true) {
  std::string h(1, static_cast<char>((fin ? 0x80 : 0) | opcode));
  if (length < 126) {
    h += static_cast<char>(0x80 | length);
  } else if (length < 65536) {
    h += static_cast<char>(0x80 | 126);
    for (int shift = 8; shift >= 0; shift -= 8) h += static_cast<char>(length >> shift);
  } else {
    h += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) h += static_cast<char>(length >> shift);
  }
  return h + std::string(reinterpret_cast<const char*>(kMask), 4);
}

}  // namespace

RawWebsocket::RawWebsocket(int port, const std::string& path, int receive_buffer) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  // Before connect(): the window the client announces follows its receive buffer.
  if (receive_buffer > 0)
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close_now();
    return;
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                              std::to_string(port) +
                              "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
  if (!send_all(request)) return;
  // The answer's head; what follows it (the server may speak first) stays in buffer_.
  const gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    pollfd p{fd_, POLLIN, 0};
    char chunk[1024];
    const ssize_t n = poll(&p, 1, 100) > 0 ? recv(fd_, chunk, sizeof chunk, 0) : 0;
    if (n < 0 || g_get_monotonic_time() > end) return;
    buffer_.append(chunk, n > 0 ? n : 0);
  }
  upgraded_ = buffer_.compare(0, 12, "HTTP/1.1 101") == 0;
  buffer_.erase(0, head_end + 4);
}

RawWebsocket::~RawWebsocket() {
  close_now();
}

void RawWebsocket::close_now() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

bool RawWebsocket::send_all(const std::string& bytes) {
  size_t sent = 0;
  while (fd_ >= 0 && sent < bytes.size()) {
    const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += n;
  }
  return fd_ >= 0;
}

bool RawWebsocket::send_frame(uint8_t opcode, const std::string& payload, bool fin) {
  std::string masked = payload;
  for (size_t i = 0; i < masked.size(); ++i) masked[i] ^= kMask[i % 4];
  return send_all(header(opcode, payload.size(), fin) + masked);
}

bool RawWebsocket::send_header(uint64_t length) {
  return send_all(header(2, length));
}

bool RawWebsocket::send_unfinished(uint8_t opcode, size_t fragment, size_t total) {
  constexpr size_t kHeader = 8;  // 2 bytes, a 16-bit length, the mask
  for (size_t sent = 0; sent + kHeader < total;) {
    const size_t payload = std::min(fragment, total - sent - kHeader);
    if (!send_frame(sent == 0 ? opcode : 0, std::string(payload, 'x'), false)) return false;
    sent += kHeader + payload;
  }
  return true;
}

// One whole frame of the server's (never masked, never fragmented here) out of buffer_.
bool RawWebsocket::parse(Frame& frame) {
  if (buffer_.size() < 2) return false;
  const auto* b = reinterpret_cast<const uint8_t*>(buffer_.data());
  uint64_t length = b[1] & 0x7f;
  size_t at = 2;
  if (length >= 126) {
    const size_t bytes = length == 126 ? 2 : 8;
    if (buffer_.size() < 2 + bytes) return false;
    length = 0;
    for (size_t i = 0; i < bytes; ++i) length = (length << 8) | b[2 + i];
    at += bytes;
  }
  if (buffer_.size() < at + length) return false;
  frame.opcode = b[0] & 0x0f;
  frame.payload = buffer_.substr(at, length);
  buffer_.erase(0, at + length);
  return true;
}

std::vector<RawWebsocket::Frame> RawWebsocket::read_frames(double seconds) {
  std::vector<Frame> frames;
  const gint64 end = g_get_monotonic_time() + static_cast<gint64>(seconds * G_USEC_PER_SEC);
  for (bool open = fd_ >= 0; open && g_get_monotonic_time() < end;) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char chunk[8192];
    const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    open = n > 0;
    if (open) buffer_.append(chunk, n);
  }
  for (Frame frame; parse(frame);) frames.push_back(frame);
  return frames;
}

}  // namespace gwtest
