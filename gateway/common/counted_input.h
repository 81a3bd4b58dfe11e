// Bounds what a client may send a websocket without finishing a message. libsoup 3.2 bounds each
// frame (max-incoming-payload-size) but assembles a message sent in fragments without limit, so
// the listener gives libsoup TCP connections whose input counts the bytes read (counted_connection
// _new), and a websocket door arms a bound on the bytes read since its last complete message:
// the read past it fails with G_IO_ERROR_MESSAGE_TOO_LARGE, which libsoup reports on the
// websocket's "error" signal (where the doors answer it, close 1009) before it drops the
// connection. Control frames (ping, pong) count too: a client has no reason to send the bound's
// worth of them between two messages.
#pragma once

#include <libsoup/soup.h>

namespace moshigw {

// A TCP connection (a GTcpConnection) on `socket` whose input counts; unbounded until armed.
GSocketConnection* counted_connection_new(GSocket* socket);

// Arms `connection` (made by counted_connection_new): from now on its count restarts at each
// message `ws` receives, and a read that takes it past `max_bytes` fails.
void bound_unfinished_messages(GSocketConnection* connection, SoupWebsocketConnection* ws,
                               guint64 max_bytes);

}  // namespace moshigw
