// A small synchronous HTTP/1.1 client for the `landlord serve` API (docs/api.md), on Boost.Beast,
// with a Server-Sent Events reader for `GET /v1/leases/{id}/events`.
//
// Plain http:// only: the control plane is meant to sit behind a TLS-terminating proxy when it
// leaves the host. Beast error codes and exceptions become Status here; nothing throws out.
#pragma once

#include <functional>
#include <memory>
#include <map>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/time.h"

namespace ll::cli {

// `http://host[:port][/prefix]`. `host` has no brackets (an IPv6 literal is written
// `http://[::1]:8080`); `port` defaults to "80"; `base_path` is "" or "/prefix" without a
// trailing slash, and is put in front of every request target.
struct Url {
  std::string host;
  std::string port;
  std::string base_path;
};

// Fails with kInvalidArgument on another scheme, an empty host, a bad port, a query, a fragment
// or user info.
Result<Url> ParseUrl(std::string_view text);

// "host:port", with brackets around an IPv6 host: how error messages name the server.
std::string UrlAddress(const Url& url);

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string content_type;
  std::map<std::string, std::string> headers;  // by lower-case name (the last of repeated ones)
};

// The Status for an HTTP error response (status >= 400): the message is the server's
// `error.message` (docs/api.md "Errors"), or "HTTP <status>" and the start of the body when the
// body is not such an error object. Returns Ok for a status below 400.
Status StatusFromResponse(const HttpResponse& response);

struct SseEvent {
  std::string id;     // the last `id:` seen on the stream (sticky across events, as in the spec)
  std::string event;  // `event:`; "message" when the event had none
  std::string data;   // the `data:` lines joined with '\n'
};

// Incremental Server-Sent Events parser (the WHATWG "event stream interpretation"): lines end
// with CRLF, LF or CR, and may be split anywhere across Feed calls; `:` starts a comment;
// `field: value` drops one space after the colon; an empty line dispatches the event when it
// has data; `retry:` and unknown fields are ignored.
class SseParser {
 public:
  using Callback = std::function<bool(const SseEvent&)>;

  // Parses `bytes` and calls `on_event` for each event it completes. Returns false as soon as
  // `on_event` returns false (the rest of `bytes` is dropped), true otherwise.
  bool Feed(std::string_view bytes, const Callback& on_event);

 private:
  bool Line(std::string_view line, const Callback& on_event);

  std::string line_;      // the partial line carried between Feed calls
  bool skip_lf_ = false;  // the previous chunk ended with CR: a leading LF ends nothing
  bool started_ = false;  // past the optional UTF-8 byte order mark
  std::string last_id_;
  std::string event_;
  std::string data_;
  bool has_data_ = false;
};

// One keep-alive connection to one server, opened on first use. A request on a reused
// connection that fails before any response byte arrives (the server closed the idle
// connection) is retried once on a fresh one.
// Thread-compatible: one thread at a time.
class HttpClient {
 public:
  // `api_key` may be empty: no Authorization header is sent then.
  HttpClient(Url url, std::string api_key);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  HttpClient(HttpClient&&) noexcept;  // a moved-from client may only be destroyed or assigned to
  HttpClient& operator=(HttpClient&&) noexcept;

  // Sends `method target` (the target is put after the URL's base path) with `body` as
  // application/json when it is not empty, and returns the response, whatever its status.
  // `timeout` bounds connecting, sending and receiving together. Fails with kUnavailable when
  // it cannot connect (nothing was sent), kIoError on another transport error (the message
  // names the server's address) and kInvalidArgument on an unknown method.
  Result<HttpResponse> Request(std::string_view method, std::string_view target,
                               const std::string& body = "",
                               Duration timeout = Duration::Seconds(30));

  // GETs `target` with `Accept: text/event-stream` (and `Last-Event-ID` when not empty) and
  // calls `on_event` for each event until it returns false or the server ends the stream, both
  // of which return Ok. A non-2xx answer returns StatusFromResponse; a transport error
  // kIoError. Connecting and the response header are bounded by 30 s; the stream itself may
  // stay idle for any time (TCP keep-alive is on). The connection is closed afterwards.
  Status Stream(std::string_view target, const std::function<bool(const SseEvent&)>& on_event,
                std::string last_event_id = "");
  // GETs `target` and passes each piece of a 2xx answer's body to `on_text` as it arrives
  // (a chunked text stream, e.g. a followed log) until it returns false or the body ends.
  Status StreamText(std::string_view target, const std::function<bool(std::string_view)>& on_text);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ll::cli
