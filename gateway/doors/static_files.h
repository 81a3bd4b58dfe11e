// --static DIR: the files of one directory at / on the websocket listener, so that a browser
// gets Kyutai's web client (its built client/dist) from the gateway it talks to. GET and HEAD
// only. A path that would leave DIR (a ".." segment, an escaped '/', a symbolic link that points
// outside) or names a hidden file is answered as a missing one, 404; a directory serves its
// index.html. Files are read whole on each request: the client's files are a few megabytes.
#pragma once

#include <libsoup/soup.h>

#include <string>

namespace moshigw {

// The MIME type of a file by its extension (what browsers need for modules and WebAssembly);
// application/octet-stream when unknown.
const char* mime_type(const std::string& file);

// The regular file under `root` (a real path: no link, no trailing '/') that the request path
// `encoded` (percent-encoded, as on the request line) names; "" when none may be served.
std::string resolve_static(const std::string& root, const char* encoded);

class StaticFiles {
 public:
  // `dir` must exist (validate_config checks it).
  explicit StaticFiles(const std::string& dir);
  const std::string& root() const { return root_; }
  // Answers one request, whatever its path (the websocket paths have their own handlers).
  void serve(SoupServerMessage* msg) const;

 private:
  std::string root_;
};

}  // namespace moshigw
