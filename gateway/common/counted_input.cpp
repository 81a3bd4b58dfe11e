#include "common/counted_input.h"

// GObject's type macros, written for C: the types are private to this file.
namespace {

struct CountedInput {
  GFilterInputStream parent;
  guint64 count;  // bytes read since the last reset
  guint64 bound;  // 0: none
};
struct CountedInputClass {
  GFilterInputStreamClass parent_class;
};

void counted_input_pollable_init(GPollableInputStreamInterface* iface);

G_DEFINE_TYPE_WITH_CODE(CountedInput, counted_input, G_TYPE_FILTER_INPUT_STREAM,
                        G_IMPLEMENT_INTERFACE(G_TYPE_POLLABLE_INPUT_STREAM,
                                              counted_input_pollable_init))

CountedInput* as_counted(gpointer stream) {
  return G_TYPE_CHECK_INSTANCE_CAST(stream, counted_input_get_type(), CountedInput);
}

GInputStream* base_of(gpointer stream) {
  return G_FILTER_INPUT_STREAM(stream)->base_stream;
}

// What a read returns once counted: the error past the bound.
gssize counted(gpointer stream, gssize read, GError** error) {
  CountedInput* input = as_counted(stream);
  if (read <= 0) return read;
  input->count += read;
  if (input->bound == 0 || input->count <= input->bound) return read;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
              "%" G_GUINT64_FORMAT " bytes without a complete message", input->count);
  return -1;
}

gssize counted_read(GInputStream* stream, void* buffer, gsize size, GCancellable* cancellable,
                    GError** error) {
  return counted(stream, g_input_stream_read(base_of(stream), buffer, size, cancellable, error),
                 error);
}

gssize counted_read_nonblocking(GPollableInputStream* stream, void* buffer, gsize size,
                                GError** error) {
  GInputStream* base = base_of(stream);
  return counted(stream,
                 g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(base), buffer,
                                                          size, nullptr, error),
                 error);
}

gboolean counted_can_poll(GPollableInputStream* stream) {
  GInputStream* base = base_of(stream);
  return G_IS_POLLABLE_INPUT_STREAM(base) &&
         g_pollable_input_stream_can_poll(G_POLLABLE_INPUT_STREAM(base));
}

gboolean counted_is_readable(GPollableInputStream* stream) {
  return g_pollable_input_stream_is_readable(G_POLLABLE_INPUT_STREAM(base_of(stream)));
}

// Ready when the base stream is: the source's callback gets this stream.
GSource* counted_create_source(GPollableInputStream* stream, GCancellable* cancellable) {
  GSource* base =
      g_pollable_input_stream_create_source(G_POLLABLE_INPUT_STREAM(base_of(stream)), nullptr);
  GSource* source = g_pollable_source_new_full(stream, base, cancellable);
  g_source_unref(base);
  return source;
}

void counted_input_pollable_init(GPollableInputStreamInterface* iface) {
  iface->can_poll = counted_can_poll;
  iface->is_readable = counted_is_readable;
  iface->create_source = counted_create_source;
  iface->read_nonblocking = counted_read_nonblocking;
}

void counted_input_class_init(CountedInputClass* klass) {
  G_INPUT_STREAM_CLASS(klass)->read_fn = counted_read;
}

void counted_input_init(CountedInput*) {}

// A TCP connection whose input stream is a CountedInput over GSocketConnection's own.
struct CountedConnection {
  GTcpConnection parent;
  GInputStream* input;
};
struct CountedConnectionClass {
  GTcpConnectionClass parent_class;
};

G_DEFINE_TYPE(CountedConnection, counted_connection, G_TYPE_TCP_CONNECTION)

CountedConnection* as_connection(gpointer connection) {
  return G_TYPE_CHECK_INSTANCE_CAST(connection, counted_connection_get_type(), CountedConnection);
}

GInputStream* counted_connection_input(GIOStream* stream) {
  CountedConnection* self = as_connection(stream);
  if (!self->input) {
    GInputStream* base =
        G_IO_STREAM_CLASS(counted_connection_parent_class)->get_input_stream(stream);
    self->input = G_INPUT_STREAM(g_object_new(counted_input_get_type(), "base-stream", base,
                                              "close-base-stream", FALSE, nullptr));
  }
  return self->input;
}

void counted_connection_dispose(GObject* object) {
  G_OBJECT_CLASS(counted_connection_parent_class)->dispose(object);
  g_clear_object(&as_connection(object)->input);
}

void counted_connection_class_init(CountedConnectionClass* klass) {
  G_OBJECT_CLASS(klass)->dispose = counted_connection_dispose;
  G_IO_STREAM_CLASS(klass)->get_input_stream = counted_connection_input;
}

void counted_connection_init(CountedConnection*) {}

void restart_count(gpointer input) {
  as_counted(input)->count = 0;
}

}  // namespace

namespace moshigw {

GSocketConnection* counted_connection_new(GSocket* socket) {
  return G_SOCKET_CONNECTION(
      g_object_new(counted_connection_get_type(), "socket", socket, nullptr));
}

void bound_unfinished_messages(GSocketConnection* connection, SoupWebsocketConnection* ws,
                               guint64 max_bytes) {
  GInputStream* input = g_io_stream_get_input_stream(G_IO_STREAM(connection));
  as_counted(input)->bound = max_bytes;
  restart_count(input);
  // Undone with the input stream, whichever goes first.
  g_signal_connect_object(ws, "message", G_CALLBACK(restart_count), input, G_CONNECT_SWAPPED);
}

}  // namespace moshigw
