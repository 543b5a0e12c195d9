// The HTTP server's connections: reading a request, routing it (or handing it to the gateway
// or serving a dashboard asset), writing the answer, keep-alive and the lingering close. The
// event streams are in http_event_streams.cc; Session and Server are declared in
// http_session.h.
#include "api/http_server.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "api/http_session.h"
#include "api/routes.h"
#include "core/build_info.h"
#include "gateway/http_util.h"
#include "web/web_assets.h"

namespace ll::api {
namespace internal {
namespace {

// What a closing connection reads and throws away so that its client reads the answer (a 413)
// rather than a reset: bodies of a few times the limit, as SDKs send them.
constexpr size_t kMaxLingerBytes = size_t{256} << 20;

// A standalone gateway's own routes besides the model API: health and metrics.
Routed GatewayOnlyRoute(const Request& r) {
  Routed out;
  const std::string_view path = r.target.substr(0, r.target.find('?'));
  if (path == "/healthz" && r.method == "GET") {
    out.route = "GET /healthz";
    out.reply.body = {{"status", "ok"}, {"role", "gateway"}, {"version", BuildVersion()}, {"commit", BuildCommit()}};
  } else if (path == "/metrics" && r.method == "GET") {
    out.route = "GET /metrics";
    out.reply.body = std::string();
    out.reply.content_type = "text/plain; version=0.0.4";
  } else {
    out.route = "other";
    out.reply = ErrorReply(StatusCode::kNotFound, "not_found", fmt::format("no route `{}` on a gateway (the control plane has it)", path));
  }
  return out;
}

}  // namespace

Session::Session(tcp::socket socket, Server& server) : stream_(std::move(socket)), server_(server) {
  server_.Add(this);
}

Session::~Session() {
  if (token_ != 0) server_.cp()->Unsubscribe(token_);
  if (log_sub_ != 0 && server_.cp()->workloads() != nullptr) {
    if (auto* sb = server_.cp()->workloads()->Find(log_lease_)) sb->logs().Unsubscribe(log_sub_);
  }
  server_.Remove(this);
}

void Session::Close() {
  if (ping_) ping_->cancel();
  if (proxying_) return;  // a gateway response in flight finishes; then the connection closes (stopping())
  if (streaming_) {
    Push("", true);  // the last chunk ends the stream cleanly
  } else if (!parser_ || !parser_->is_header_done()) {
    // Idle between requests: nothing in flight.
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }
  closing_ = true;
}

void Session::Read() {
  if (server_.stopping()) return;
  parser_.emplace();
  parser_->body_limit(server_.config().max_body_bytes);
  parser_->header_limit(16 * 1024);
  stream_.expires_after(std::chrono::milliseconds(server_.config().request_timeout.ms));
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
}

void Session::OnRead(beast::error_code ec) {
  auto t0 = std::chrono::steady_clock::now();
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    return;
  }
  Routed routed;
  if (ec == http::error::body_limit) {
    routed.route = "too_large";
    routed.reply = HttpErrorReply(413, "body_too_large",
                              fmt::format("the body is over {} bytes", server_.config().max_body_bytes));
    Respond(routed, t0);
    return;
  }
  if (ec) {
    routed.route = "bad_request";
    routed.reply = ErrorReply(StatusCode::kInvalidArgument, "bad_http", fmt::format("malformed HTTP request: {}", ec.message()));
    Respond(routed, t0);
    return;
  }
  const auto& req = parser_->get();
  if (server_.gateway() != nullptr && gateway::Gateway::Handles(Sv(req.target()))) {
    t0_ = t0;
    HandleGateway();
    return;
  }
  if (server_.cp() != nullptr && ServeAsset(Sv(req.method_string()), Sv(req.target()))) return;
  Request r;
  r.method = Sv(req.method_string());
  r.target = Sv(req.target());
  r.authorization = Sv(req[http::field::authorization]);
  r.body = req.body();
  if (server_.cp() == nullptr) {
    routed = GatewayOnlyRoute(r);
    if (routed.route == "GET /metrics" && server_.gather()) {
      server_.gather()([self = shared_from_this(), routed, t0](std::string text) mutable {
        routed.reply.body = std::move(text);
        self->Respond(routed, t0, /*own_metrics=*/false);
      });
      return;
    }
  } else {
    routed = Route(*server_.cp(), r);
    if (routed.group_commit && server_.cp()->HasPendingWrites()) {
      // Committed together with the others of this turn of the loop, answered once durable.
      server_.AfterCommit([self = shared_from_this(), routed, t0] { self->Respond(routed, t0); });
      return;
    }
  }
  if (routed.stream) {
    StartStream(routed, t0);
    return;
  }
  if (routed.follow_logs) {
    StartLogFollow(routed, t0);
    return;
  }
  if (routed.wait_notice) {
    WaitNotice(routed, t0);
    return;
  }
  Respond(routed, t0);
}

void Session::Respond(const Routed& routed, std::chrono::steady_clock::time_point t0, bool own_metrics) {
  auto res = std::make_shared<http::response<http::string_body>>();
  res->version(11);
  res->result(static_cast<http::status>(routed.reply.status));
  res->set(http::field::server, "landlord");
  if (!routed.reply.content_type.empty() && routed.reply.body.is_string()) {
    res->set(http::field::content_type, routed.reply.content_type);
    res->body() = routed.reply.body.get<std::string>();
    // The server's own request counters (and its gateway's) follow the control plane's metrics.
    if (routed.route == "GET /metrics" && own_metrics) res->body() += server_.MetricsText();
  } else {
    res->set(http::field::content_type, "application/json");
    res->body() = ReplyText(routed.reply) + "\n";
  }
  if (routed.reply.status == 401) res->set(http::field::www_authenticate, "Bearer");
  t0_ = t0;
  Finish(res, routed.route, routed.reply.status);
}

void Session::Finish(std::shared_ptr<http::response<http::string_body>> res, const std::string& route, int status) {
  bool keep = parser_ && parser_->is_header_done() && parser_->get().keep_alive() && !server_.stopping() &&
              status != 413 && route != "bad_request";
  res->keep_alive(keep);
  res->prepare_payload();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  server_.metrics().Observe(route, status, seconds);
  http::async_write(stream_, *res, [self = shared_from_this(), res, keep](beast::error_code ec, size_t) {
    self->Written(ec, keep);
  });
}

void Session::Written(beast::error_code ec, bool keep) {
  if (ec) return;
  if (keep && !closing_) {
    Read();
  } else {
    LingerAndClose();
  }
}

void Session::LingerAndClose() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (server_.stopping()) return;
  // The whole drain, not each read, gets the request timeout (at least 5 s).
  stream_.expires_after(std::chrono::milliseconds(std::max<int64_t>(server_.config().request_timeout.ms, 5000)));
  discard_ = std::make_unique<std::array<char, 64 * 1024>>();
  Discard();
}

void Session::Discard() {
  stream_.async_read_some(net::buffer(*discard_), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->discarded_ += n;
    if (ec || self->discarded_ > kMaxLingerBytes || self->server_.stopping()) {
      beast::error_code ignored;
      self->stream_.socket().close(ignored);
      return;
    }
    self->Discard();
  });
}

bool Session::ServeAsset(std::string_view method, std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  std::string_view name;
  if (path == "/" || path == "/index.html") {
    name = "index.html";
  } else if (path.starts_with("/assets/")) {
    name = path.substr(8);
  } else {
    return false;
  }
  const web::Asset* a = web::FindAsset(name);
  if (a == nullptr || name.find('/') != std::string_view::npos) return false;  // the API's 404
  if (method != "GET") {
    Routed r;
    r.route = "GET /assets";
    r.reply = HttpErrorReply(405, "method_not_allowed", fmt::format("`{}` is not allowed on `{}`", method, path));
    Respond(r, std::chrono::steady_clock::now());
    return true;
  }
  t0_ = std::chrono::steady_clock::now();
  auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, 11);
  res->set(http::field::server, "landlord");
  res->set(http::field::content_type, beast::string_view(a->content_type.data(), a->content_type.size()));
  res->set(http::field::cache_control, "no-cache");
  res->set("x-content-type-options", "nosniff");
  // Same-origin only: the page loads nothing from elsewhere and talks only to this server.
  res->set("content-security-policy",
           "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
           "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  res->body() = std::string(a->body);
  Finish(res, name == "index.html" ? "GET /" : "GET /assets", 200);
  return true;
}

namespace {

// The gateway's view of the connection. It owns the session while the gateway works on the
// request (no read or write of the session's own may be pending then).
class SessionDownstream final : public gateway::Downstream {
 public:
  explicit SessionDownstream(std::shared_ptr<Session> s) : s_(std::move(s)) {}
  void Send(Head head, std::string body) override { s_->SendGateway(std::move(head), std::move(body)); }
  void Begin(Head head) override { s_->BeginGateway(std::move(head)); }
  void Chunk(std::string data) override { s_->Push(std::move(data), false); }
  void End() override { s_->Push("", true); }
  bool open() const override { return s_->open(); }

 private:
  std::shared_ptr<Session> s_;
};

}  // namespace

void Session::HandleGateway() {
  auto& req = parser_->get();
  gateway::GatewayRequest g;
  g.method = std::string(Sv(req.method_string()));
  g.target = std::string(Sv(req.target()));
  g.authorization = std::string(Sv(req[http::field::authorization]));
  g.body = std::move(req.body());
  std::string_view path = std::string_view(g.target).substr(0, g.target.find('?'));
  if (path.starts_with("/v1/models/")) path = "/v1/models/{id}";  // a bounded set of metric labels
  // Rebuilt in place: a keep-alive connection's next request reuses the string.
  gateway_route_.assign(gateway::MethodLabel(g.method)).append(" ").append(path);
  proxying_ = true;
  proxy_keep_ = req.keep_alive();
  stream_.expires_never();
  server_.gateway()->Handle(std::move(g), std::make_shared<SessionDownstream>(shared_from_this()));
}

// The model API's whole answers are the hot path: the head is written as one string and sent
// with the body in one gather write (no Beast fields or serializer). Header names and values
// are the gateway's own or come from an upstream's parsed head (no CR or LF in either).
void Session::SendGateway(gateway::Downstream::Head head, std::string body) {
  proxying_ = false;
  if (closing_) return;
  const bool keep = parser_ && parser_->is_header_done() && parser_->get().keep_alive() && !server_.stopping();
  struct Out {
    std::string head, body;
  };
  auto out = std::make_shared<Out>();
  out->body = std::move(body);
  out->head.reserve(160 + 64 * head.headers.size());
  auto it = std::back_inserter(out->head);
  const auto reason = http::obsolete_reason(static_cast<http::status>(head.status));
  fmt::format_to(it, "HTTP/1.1 {} {}\r\nServer: landlord\r\nContent-Type: {}\r\n", head.status,
                 std::string_view(reason.data(), reason.size()), head.content_type);
  for (const auto& [k, v] : head.headers) fmt::format_to(it, "{}: {}\r\n", k, v);
  const bool http10 = parser_ && parser_->get().version() == 10;
  fmt::format_to(it, "{}Content-Length: {}\r\n\r\n",
                 !keep ? "Connection: close\r\n" : http10 ? "Connection: keep-alive\r\n" : "", out->body.size());
  server_.metrics().Observe(gateway_route_, head.status,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  std::array<net::const_buffer, 2> buffers{net::buffer(out->head), net::buffer(out->body)};
  net::async_write(stream_, buffers, [self = shared_from_this(), out, keep](beast::error_code ec, size_t) {
    self->Written(ec, keep);
  });
}

void Session::BeginGateway(gateway::Downstream::Head head) {
  auto h = std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(head.status), 11);
  h->set(http::field::content_type, head.content_type);
  for (auto& [k, v] : head.headers) h->set(k, v);
  server_.metrics().Observe(gateway_route_, head.status,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  out_.clear();
  BeginChunked(std::move(h));
}

}  // namespace internal

Result<std::unique_ptr<HttpServer>> HttpServer::Start(boost::asio::io_context& ioc, ControlPlane& cp,
                                                      const ServeConfig& config, gateway::Gateway* gw) {
  auto s = std::make_unique<internal::Server>(ioc, &cp, config, gw);
  LL_RETURN_IF_ERROR(s->Listen());
  return std::unique_ptr<HttpServer>(std::move(s));
}

Result<std::unique_ptr<HttpServer>> HttpServer::StartGateway(boost::asio::io_context& ioc, const ServeConfig& config,
                                                             gateway::Gateway& gw, bool reuse_port) {
  auto s = std::make_unique<internal::Server>(ioc, nullptr, config, &gw, reuse_port);
  LL_RETURN_IF_ERROR(s->Listen());
  return std::unique_ptr<HttpServer>(std::move(s));
}

}  // namespace ll::api
