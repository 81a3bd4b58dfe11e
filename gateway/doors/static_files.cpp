#include "doors/static_files.h"

#include <glib.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace moshigw {

namespace {

struct MimeRow {
  const char* extension;
  const char* type;
};

// One row per extension a built web client holds; a module script served as anything but
// JavaScript leaves the page blank.
constexpr MimeRow kMimeTypes[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".wasm", "application/wasm"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".svg", "image/svg+xml"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
};

// The real path of `path` (links resolved), "" when it does not exist.
std::string real_path(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) ? resolved : "";
}

// "/a/b/" -> root + "/a/b"; "" when a segment starts with a dot: "..", "." and hidden files
// are never served.
std::string join_segments(const std::string& root, const char* path) {
  std::string joined = root;
  g_auto(GStrv) segments = g_strsplit(path, "/", -1);
  for (char** s = segments; *s; ++s) {
    if (**s == '\0') continue;
    if (**s == '.') return "";
    joined += "/";
    joined += *s;
  }
  return joined;
}

void answer_text(SoupServerMessage* msg, guint status, const char* text) {
  soup_server_message_set_status(msg, status, nullptr);
  soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_COPY, text,
                                   strlen(text));
}

}  // namespace

const char* mime_type(const std::string& file) {
  for (const MimeRow& row : kMimeTypes)
    if (g_str_has_suffix(file.c_str(), row.extension)) return row.type;
  return "application/octet-stream";
}

std::string resolve_static(const std::string& root, const char* encoded) {
  if (!encoded || encoded[0] != '/') return "";
  // NULL for an escaped '/' or NUL: neither names a file of the tree.
  g_autofree char* path = g_uri_unescape_string(encoded, "/");
  if (!path) return "";
  std::string file = join_segments(root, path);
  if (file.empty()) return "";
  if (g_file_test(file.c_str(), G_FILE_TEST_IS_DIR)) file += "/index.html";
  file = real_path(file);
  const bool inside = file.compare(0, root.size() + 1, root + "/") == 0;
  return inside && g_file_test(file.c_str(), G_FILE_TEST_IS_REGULAR) ? file : "";
}

StaticFiles::StaticFiles(const std::string& dir) : root_(real_path(dir)) {}

void StaticFiles::serve(SoupServerMessage* msg) const {
  const char* method = soup_server_message_get_method(msg);
  if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD) {
    soup_message_headers_append(soup_server_message_get_response_headers(msg), "Allow",
                                "GET, HEAD");
    return answer_text(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "GET or HEAD only\n");
  }
  const std::string file =
      root_.empty() ? "" : resolve_static(root_, g_uri_get_path(soup_server_message_get_uri(msg)));
  gchar* contents = nullptr;
  gsize size = 0;
  if (file.empty() || !g_file_get_contents(file.c_str(), &contents, &size, nullptr))
    return answer_text(msg, SOUP_STATUS_NOT_FOUND, "not found\n");
  soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
  soup_server_message_set_response(msg, mime_type(file), SOUP_MEMORY_TAKE, contents, size);
}

}  // namespace moshigw
