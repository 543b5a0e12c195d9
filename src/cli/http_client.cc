#include "cli/http_client.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ll::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using beast::error_code;

constexpr std::string_view kUserAgent = "landlord-cli/0.1.0";
// The API's bodies are at most 1 MiB (docs/api.md) but admin listings may be larger.
constexpr uint64_t kMaxResponseBody = 64u << 20;
// Connecting and the response header of an event stream; the stream itself has no timeout.
constexpr Duration kStreamHeaderTimeout = Duration::Seconds(30);
// How much of a non-2xx answer to an event-stream request is kept for the error message.
constexpr size_t kMaxErrorBody = 1u << 20;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsHostChar(char c, bool bracketed) {
  if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_') return true;
  return bracketed && (c == ':' || c == '%');
}

std::chrono::milliseconds ToChrono(Duration d) { return std::chrono::milliseconds(d.ms); }

// Boost 1.74's Beast speaks boost::string_view.
std::string_view View(beast::string_view s) { return std::string_view(s.data(), s.size()); }
beast::string_view Bsv(std::string_view s) { return beast::string_view(s.data(), s.size()); }

std::string FormatSeconds(Duration d) {
  if (d.ms % 1000 == 0) return fmt::format("{}s", d.ms / 1000);
  return fmt::format("{}ms", d.ms);
}

// A transport error in words people recognize.
std::string Describe(const error_code& ec, Duration timeout) {
  if (ec == beast::error::timeout) return "timed out after " + FormatSeconds(timeout);
  if (ec == http::error::end_of_stream || ec == asio::error::eof) {
    return "the server closed the connection";
  }
  if (ec == http::error::partial_message) return "the server closed the connection mid-response";
  return ec.message();
}

std::string FirstLine(std::string_view body, size_t max) {
  size_t end = body.find_first_of("\r\n");
  std::string_view line = body.substr(0, end);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
    line.remove_suffix(1);
  if (line.size() > max) return std::string(line.substr(0, max)) + "...";
  return std::string(line);
}

}  // namespace

Result<Url> ParseUrl(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::Invalid(fmt::format("invalid URL `{}`: {}", text, why));
  };
  size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) return bad("expected `http://HOST:PORT`");
  std::string scheme = Lower(text.substr(0, scheme_end));
  if (scheme == "https") {
    return bad(
        "https is not supported: use http:// (terminate TLS in a proxy in front of the server)");
  }
  if (scheme != "http") return bad(fmt::format("unsupported scheme `{}`: only http:// is", scheme));
  std::string_view rest = text.substr(scheme_end + 3);
  if (rest.find_first_of("?#") != std::string_view::npos)
    return bad("a query or fragment is not allowed");
  size_t path_start = rest.find('/');
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? "" : rest.substr(path_start);
  if (authority.find('@') != std::string_view::npos) {
    return bad("user info is not allowed (pass the API key with `--key`)");
  }

  Url url;
  std::string_view host, port;
  bool has_port = false;
  bool bracketed = !authority.empty() && authority[0] == '[';
  if (bracketed) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("missing `]` after the IPv6 host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("expected `:PORT` after `]`");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
      if (port.find(':') != std::string_view::npos) return bad("an IPv6 host must be in brackets");
    }
  }
  if (host.empty()) return bad("missing host");
  for (char c : host) {
    if (!IsHostChar(c, bracketed)) return bad(fmt::format("invalid character in host `{}`", host));
  }
  url.host = std::string(host);
  if (has_port) {
    int value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    bool digits_only =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits_only || ec != std::errc() || p != port.data() + port.size() || value < 1 ||
        value > 65535) {
      return bad(fmt::format("invalid port `{}`", port));
    }
    url.port = std::to_string(value);
  } else {
    url.port = "80";
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return bad("invalid character in the path");
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  url.base_path = std::string(path);
  return url;
}

std::string UrlAddress(const Url& url) {
  if (url.host.find(':') != std::string::npos) return fmt::format("[{}]:{}", url.host, url.port);
  return fmt::format("{}:{}", url.host, url.port);
}

Status StatusFromResponse(const HttpResponse& response) {
  if (response.status < 400) return Status::Ok();
  std::string message;
  std::string code;
  nlohmann::json j = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    auto error = j.find("error");
    if (error != j.end() && error->is_object()) {
      auto m = error->find("message");
      if (m != error->end() && m->is_string()) message = m->get<std::string>();
      auto c = error->find("code");
      if (c != error->end() && c->is_string()) code = c->get<std::string>();
    }
  }
  if (message.empty()) {
    std::string first = FirstLine(response.body, 200);
    message = first.empty() ? fmt::format("HTTP {}", response.status)
                            : fmt::format("HTTP {}: {}", response.status, first);
  }
  StatusCode sc = StatusCode::kInvalidArgument;
  switch (response.status) {
    case 404:
      sc = StatusCode::kNotFound;
      break;
    case 409:
      sc = code == "insufficient_capacity" ? StatusCode::kResourceExhausted : StatusCode::kConflict;
      break;
    case 503:
      sc = StatusCode::kResourceExhausted;
      break;
    default:
      if (response.status >= 500) sc = StatusCode::kInternal;
      break;
  }
  return Status(sc, std::move(message));
}

// --- SseParser ---------------------------------------------------------------------------------

bool SseParser::Feed(std::string_view bytes, const Callback& on_event) {
  size_t i = 0;
  while (i < bytes.size()) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (bytes[i] == '\n') {
        ++i;
        continue;
      }
    }
    size_t end = bytes.find_first_of("\r\n", i);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(i));
      break;
    }
    std::string_view line;
    if (line_.empty()) {
      line = bytes.substr(i, end - i);
    } else {
      line_.append(bytes.substr(i, end - i));
      line = line_;
    }
    if (bytes[end] == '\r') {
      if (end + 1 == bytes.size()) {
        skip_lf_ = true;  // a CRLF split between two chunks
      } else if (bytes[end + 1] == '\n') {
        ++end;
      }
    }
    i = end + 1;
    bool more = Line(line, on_event);
    line_.clear();
    if (!more) return false;
  }
  return true;
}

bool SseParser::Line(std::string_view line, const Callback& on_event) {
  if (!started_) {
    started_ = true;
    if (line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
  }
  if (line.empty()) {
    if (!has_data_) {
      event_.clear();
      return true;
    }
    SseEvent ev{last_id_, event_.empty() ? "message" : std::move(event_), std::move(data_)};
    event_.clear();
    data_.clear();
    has_data_ = false;
    return on_event(ev);
  }
  if (line[0] == ':') return true;
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_ += '\n';
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    event_ = std::string(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_ = std::string(value);
  }
  return true;
}

// --- HttpClient --------------------------------------------------------------------------------

struct HttpClient::Impl {
  Url url;
  std::string api_key;
  std::string address;      // for messages: "127.0.0.1:8080"
  std::string host_header;  // the Host header: the address, without ":80"
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  bool connected = false;

  Impl(Url u, std::string key) : url(std::move(u)), api_key(std::move(key)) {
    address = UrlAddress(url);
    host_header = url.port == "80"
                      ? (url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host)
                      : address;
  }

  // Starts one asynchronous operation with `start(handler)` and runs the io_context until it
  // completes: synchronous calls with tcp_stream's timeouts.
  template <typename Start>
  error_code Run(Start&& start) {
    error_code result;
    bool done = false;
    start([&](error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    ioc.restart();
    ioc.run();
    LL_CHECK(done);
    return result;
  }

  void Close() {
    if (stream.socket().is_open()) {
      error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }
    stream.close();
    connected = false;
    buffer.consume(buffer.size());
  }

  Status Connect(Duration timeout) {
    Close();
    tcp::resolver resolver(ioc);
    error_code ec;
    auto endpoints = resolver.resolve(url.host, url.port, ec);
    if (ec) return Status::Io(fmt::format("cannot resolve {}: {}", url.host, ec.message()));
    stream.expires_after(ToChrono(timeout));
    ec = Run([&](auto handler) { stream.async_connect(endpoints, std::move(handler)); });
    if (ec) {
      Close();
      // kUnavailable: nothing was sent, so any request may be tried elsewhere (another leader).
      return Status::Unavailable(fmt::format("cannot connect to {}: {}", address, Describe(ec, timeout)));
    }
    stream.socket().set_option(tcp::no_delay(true), ec);
    stream.socket().set_option(asio::socket_base::keep_alive(true), ec);
    connected = true;
    return Status::Ok();
  }

  template <typename Body>
  void SetCommonHeaders(http::request<Body>& req) const {
    req.set(http::field::host, host_header);
    req.set(http::field::user_agent, Bsv(kUserAgent));
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
    req.keep_alive(true);
  }

  // Sends `req` and reads the response header (and, for `read_body`, the body) into `parser`,
  // connecting first if needed and retrying once on a fresh connection when a reused one fails
  // before any byte of the response.
  template <typename Req, typename Parser, typename MakeParser>
  Status Exchange(const Req& req, const MakeParser& make_parser, std::unique_ptr<Parser>* parser,
                  bool read_body, Duration timeout) {
    for (int attempt = 0;; ++attempt) {
      bool reused = connected;
      if (reused) {
        stream.expires_after(ToChrono(timeout));
      } else {
        LL_RETURN_IF_ERROR(Connect(timeout));
      }
      *parser = make_parser();
      error_code write_ec =
          Run([&](auto handler) { http::async_write(stream, req, std::move(handler)); });
      error_code ec = write_ec;
      if (!write_ec) {
        if (read_body) {
          ec = Run([&](auto handler) {
            http::async_read(stream, buffer, **parser, std::move(handler));
          });
        } else {
          ec = Run([&](auto handler) {
            http::async_read_header(stream, buffer, **parser, std::move(handler));
          });
        }
      } else if (read_body && write_ec != beast::error::timeout) {
        // The server may have answered early and stopped reading (e.g. 413 for a body over
        // its limit): that answer is the one to report.
        if (!Run([&](auto handler) {
              http::async_read(stream, buffer, **parser, std::move(handler));
            })) {
          Close();  // the request was not sent whole: the connection cannot be reused
          return Status::Ok();
        }
      }
      if (!ec) return Status::Ok();
      bool nothing_received = !(*parser)->got_some() && buffer.size() == 0;
      Close();
      if (reused && attempt == 0 && nothing_received && ec != beast::error::timeout) continue;
      return Status::Io(fmt::format("{} {} on {}: {}", View(req.method_string()),
                                    View(req.target()), address, Describe(ec, timeout)));
    }
  }

  Result<HttpResponse> Request(std::string_view method, std::string_view target,
                               const std::string& body, Duration timeout) {
    http::verb verb = http::string_to_verb(Bsv(method));
    if (verb == http::verb::unknown) {
      return Status::Invalid(fmt::format("unknown HTTP method `{}`", method));
    }
    http::request<http::string_body> req{verb, url.base_path + std::string(target), 11};
    SetCommonHeaders(req);
    req.set(http::field::accept, "application/json");
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();

    using Parser = http::response_parser<http::string_body>;
    std::unique_ptr<Parser> parser;
    auto make_parser = [verb]() {
      auto p = std::make_unique<Parser>();
      p->body_limit(kMaxResponseBody);
      if (verb == http::verb::head) p->skip(true);
      return p;
    };
    LL_RETURN_IF_ERROR(Exchange(req, make_parser, &parser, true, timeout));
    auto& res = parser->get();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(View(res[http::field::content_type]));
    for (const auto& f : res) out.headers[Lower(std::string(View(f.name_string())))] = std::string(View(f.value()));
    out.body = std::move(res.body());
    if (!res.keep_alive()) Close();
    return out;
  }

  // With `on_text`, any 2xx answer is the stream and its raw bytes go to `on_text`.
  Status Stream(std::string_view target, const std::function<bool(const SseEvent&)>& on_event,
                const std::string& last_event_id,
                const std::function<bool(std::string_view)>* on_text = nullptr) {
    http::request<http::empty_body> req{http::verb::get, url.base_path + std::string(target), 11};
    SetCommonHeaders(req);
    req.set(http::field::accept, "text/event-stream");
    req.set(http::field::cache_control, "no-cache");
    if (!last_event_id.empty()) req.set("Last-Event-ID", last_event_id);

    using Parser = http::response_parser<http::buffer_body>;
    std::unique_ptr<Parser> parser;
    auto make_parser = []() {
      auto p = std::make_unique<Parser>();
      p->body_limit(std::numeric_limits<uint64_t>::max());
      return p;
    };
    LL_RETURN_IF_ERROR(Exchange(req, make_parser, &parser, false, kStreamHeaderTimeout));

    HttpResponse head;
    head.status = static_cast<int>(parser->get().result_int());
    head.content_type = std::string(View(parser->get()[http::field::content_type]));
    bool is_stream = head.status / 100 == 2 &&
                     (on_text != nullptr || Lower(head.content_type).starts_with("text/event-stream"));
    if (is_stream) {
      stream.expires_never();
    } else {
      stream.expires_after(ToChrono(kStreamHeaderTimeout));  // for the (error) body
    }

    SseParser sse;
    char buf[8192];
    while (!parser->is_done()) {
      parser->get().body().data = buf;
      parser->get().body().size = sizeof buf;
      error_code ec = Run([&](auto handler) {
        http::async_read_some(stream, buffer, *parser, std::move(handler));
      });
      if (ec == http::error::need_buffer) ec = {};
      size_t n = sizeof buf - parser->get().body().size;
      if (is_stream) {
        const bool go_on = on_text != nullptr ? (n == 0 || (*on_text)(std::string_view(buf, n)))
                                              : sse.Feed(std::string_view(buf, n), on_event);
        if (!go_on) {
          Close();  // stopped mid-stream: the connection cannot be reused
          return Status::Ok();
        }
      } else if (head.body.size() < kMaxErrorBody) {
        head.body.append(buf, n);
      }
      if (ec) {
        Close();
        return Status::Io(fmt::format("event stream {} from {}: {}", target, address,
                                      Describe(ec, kStreamHeaderTimeout)));
      }
    }
    Close();
    if (is_stream) return Status::Ok();
    if (head.status >= 400) return StatusFromResponse(head);
    return Status::Io(
        fmt::format("event stream {} from {}: expected text/event-stream, got HTTP {} `{}`", target,
                    address, head.status, head.content_type));
  }
};

HttpClient::HttpClient(Url url, std::string api_key)
    : impl_(std::make_unique<Impl>(std::move(url), std::move(api_key))) {}

HttpClient::~HttpClient() {
  if (impl_ == nullptr) return;  // moved from
  try {
    impl_->Close();
  } catch (...) {  // NOLINT: nothing to do about a failed close
  }
}

HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

Result<HttpResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                         const std::string& body, Duration timeout) {
  try {
    return impl_->Request(method, target, body, timeout);
  } catch (const std::exception& e) {
    impl_->Close();
    return Status(StatusCode::kIoError,
                  fmt::format("{} {} on {}: {}", method, target, impl_->address, e.what()));
  }
}

Status HttpClient::Stream(std::string_view target,
                          const std::function<bool(const SseEvent&)>& on_event,
                          std::string last_event_id) {
  try {
    return impl_->Stream(target, on_event, last_event_id);
  } catch (const std::exception& e) {
    impl_->Close();
    return Status::Io(fmt::format("event stream {} from {}: {}", target, impl_->address, e.what()));
  }
}

Status HttpClient::StreamText(std::string_view target, const std::function<bool(std::string_view)>& on_text) {
  try {
    return impl_->Stream(target, nullptr, "", &on_text);
  } catch (const std::exception& e) {
    impl_->Close();
    return Status::Io(fmt::format("stream {} from {}: {}", target, impl_->address, e.what()));
  }
}

}  // namespace ll::cli
