// A websocket client written by hand over a plain TCP socket (RFC 6455: the upgrade, masked
// frames), for what libsoup's client cannot be made to do: never read its socket, with a small
// receive buffer so that what the gateway sends backs up at once; or send a frame header that
// announces more than follows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gwtest {

class RawWebsocket {
 public:
  // Connects to 127.0.0.1:`port` (with a receive buffer of `receive_buffer` bytes; 0: the
  // system's) and upgrades `path`; upgraded() says whether the answer was 101.
  RawWebsocket(int port, const std::string& path, int receive_buffer = 0);
  ~RawWebsocket();
  RawWebsocket(const RawWebsocket&) = delete;
  RawWebsocket& operator=(const RawWebsocket&) = delete;
  bool upgraded() const { return upgraded_; }

  // One masked frame: opcode 1 text, 2 binary, 8 close, 0 the continuation of a fragmented
  // message; `fin` unless more fragments follow. False once the socket fails.
  bool send_frame(uint8_t opcode, const std::string& payload, bool fin = true);
  // The header (and mask) of a binary frame of `length` bytes, without the bytes.
  bool send_header(uint64_t length);
  // A message of `opcode` in fragments of `fragment` bytes (126 to 65535), never finished:
  // `total` bytes in all, frame headers (8 bytes each) included, the last fragment cut to fit,
  // so that a server that reads them all knows exactly how many it has read.
  bool send_unfinished(uint8_t opcode, size_t fragment, size_t total);

  struct Frame {
    uint8_t opcode = 0;
    std::string payload;
  };
  // The frames the server sends, until it closes the connection or `seconds` pass.
  std::vector<Frame> read_frames(double seconds);
  void close_now();

 private:
  bool send_all(const std::string& bytes);
  bool parse(Frame& frame);
  int fd_ = -1;
  bool upgraded_ = false;
  std::string buffer_;  // read and not yet parsed
};

}  // namespace gwtest
