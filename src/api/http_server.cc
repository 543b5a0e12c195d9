#include "api/http_server.h"

#include <chrono>
#include <deque>
#include <map>

#include <boost/asio/ip/tcp.hpp>
#include <array>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "api/routes.h"
#include "gateway/http_util.h"
#include "web/web_assets.h"

namespace ll::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// What a closing connection reads and throws away so that its client reads the answer (a 413)
// rather than a reset: bodies of a few times the limit, as SDKs send them.
constexpr size_t kMaxLingerBytes = size_t{256} << 20;

// Request counters and latency histograms per route and status.
class HttpMetrics {
 public:
  void Observe(const std::string& route, int status, double seconds) {
    Series& s = series_[{route, status}];
    ++s.count;
    s.sum += seconds;
    for (size_t i = 0; i < kBuckets.size(); ++i) s.buckets[i] += seconds <= kBuckets[i];
  }
  std::string Text() const {
    std::string out =
        "# HELP landlord_http_requests_total HTTP requests by route and status\n"
        "# TYPE landlord_http_requests_total counter\n";
    for (auto& [k, s] : series_) {
      out += fmt::format("landlord_http_requests_total{{route=\"{}\",code=\"{}\"}} {}\n", k.first, k.second, s.count);
    }
    out +=
        "# HELP landlord_http_request_duration_seconds time to handle a request\n"
        "# TYPE landlord_http_request_duration_seconds histogram\n";
    std::map<std::string, Series> by_route;
    for (auto& [k, s] : series_) {
      Series& r = by_route[k.first];
      r.count += s.count;
      r.sum += s.sum;
      for (size_t i = 0; i < kBuckets.size(); ++i) r.buckets[i] += s.buckets[i];
    }
    for (auto& [route, s] : by_route) {
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        out += fmt::format("landlord_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n", route,
                           kBuckets[i], s.buckets[i]);
      }
      out += fmt::format("landlord_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n", route, s.count);
      out += fmt::format("landlord_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", route, s.sum);
      out += fmt::format("landlord_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", route, s.count);
    }
    return out;
  }

 private:
  static constexpr std::array<double, 10> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                      0.005,  0.01,    0.05,   0.25,  1.0};
  struct Series {
    uint64_t count = 0;
    double sum = 0;
    std::array<uint64_t, 10> buckets{};
  };
  std::map<std::pair<std::string, int>, Series> series_;
};

class Server;

// A standalone gateway's own routes besides the model API: health and metrics.
Routed GatewayOnlyRoute(const Request& r) {
  Routed out;
  const std::string_view path = r.target.substr(0, r.target.find('?'));
  if (path == "/healthz" && r.method == "GET") {
    out.route = "GET /healthz";
    out.reply.body = {{"status", "ok"}, {"role", "gateway"}};
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

// Boost 1.74's Beast has its own string_view.
std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server& server);
  ~Session();
  void Start() { Read(); }
  void Close();
  // Drops the connection now, whatever is in flight (the last step of a shutdown).
  void Abort() {
    closing_ = true;
    proxying_ = false;
    if (ping_) ping_->cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  // The gateway's answers (SessionDownstream).
  void SendGateway(gateway::Downstream::Head head, std::string body);
  void BeginGateway(gateway::Downstream::Head head);
  void Push(std::string chunk, bool last);
  bool open() const { return !closing_; }

 private:
  void HandleGateway();
  // Writes `res` and then reads the next request (keep-alive) or closes.
  void Finish(std::shared_ptr<http::response<http::string_body>> res, const std::string& route, int status);
  // After a whole answer is written: the next request (keep-alive), or the end.
  void Written(beast::error_code ec, bool keep);
  // The end of a connection whose client may still be sending (RFC 9112 §9.6): a client that
  // writes a whole body over the limit before it reads would get a reset, not the 413, if the
  // socket closed with its bytes unread. So: FIN, then read and discard until the client closes,
  // kMaxLingerBytes or the request timeout, then close.
  void LingerAndClose();
  void Discard();
  void Read();
  void OnRead(beast::error_code ec);
  void Respond(const Routed& routed, std::chrono::steady_clock::time_point t0);
  void StartStream(const Routed& routed, std::chrono::steady_clock::time_point t0);
  // The owner's dashboard: its page and assets (public: they hold no data), and its live feed.
  bool ServeAsset(std::string_view method, std::string_view path);
  void StartDashboardStream(std::chrono::steady_clock::time_point t0);
  void PushDashboard();
  void BeginChunked(std::shared_ptr<http::response<http::empty_body>> head);
  void WriteNext();
  void KeepAlive();

  beast::tcp_stream stream_;
  Server& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::chrono::steady_clock::time_point t0_;
  std::string gateway_route_;
  bool proxying_ = false;  // a gateway response is being sent (the connection stays open after it)
  bool proxy_keep_ = false;
  // Event streams.
  bool streaming_ = false;
  bool writing_ = false;
  bool closing_ = false;
  std::deque<std::pair<std::string, bool>> out_;  // chunks; `true` on the last one
  uint64_t token_ = 0;
  std::unique_ptr<net::steady_timer> ping_;
  std::string last_map_;  // the fleet map last pushed to a dashboard
  int pushes_ = 0;
  std::shared_ptr<http::response<http::empty_body>> stream_head_;
  std::shared_ptr<http::response_serializer<http::empty_body>> stream_sr_;
  std::unique_ptr<std::array<char, 64 * 1024>> discard_;  // while lingering
  size_t discarded_ = 0;
};

class Server final : public HttpServer {
 public:
  Server(net::io_context& ioc, ControlPlane* cp, const ServeConfig& config, gateway::Gateway* gw)
      : cp_(cp), config_(config), gateway_(gw), acceptor_(ioc), tick_(ioc) {}

  Status Listen() {
    LL_RETURN_IF_ERROR(gateway::OpenAcceptor(acceptor_, config_.listen));
    bound_ = acceptor_.local_endpoint();
    Accept();
    Tick();
    return Status::Ok();
  }

  std::string address() const override { return fmt::format("{}:{}", bound_.address().to_string(), bound_.port()); }
  size_t connections() const override { return sessions_.size(); }
  void CloseAll() override {
    for (Session* s : sessions_) s->Abort();
  }

  void Shutdown() override {
    if (stopping_) return;
    stopping_ = true;
    beast::error_code ec;
    acceptor_.close(ec);
    tick_.cancel();
    // Streams end now; request sessions finish the request they are in and then close.
    auto sessions = sessions_;
    for (Session* s : sessions) s->Close();
  }

  ControlPlane* cp() { return cp_; }
  gateway::Gateway* gateway() { return gateway_; }
  // Runs `respond` once the control plane's queued writes are committed: one commit for every
  // request handled before the loop gets to it (group commit).
  void AfterCommit(std::function<void()> respond) {
    after_commit_.push_back(std::move(respond));
    if (commit_posted_) return;
    commit_posted_ = true;
    net::post(acceptor_.get_executor(), [this] {
      commit_posted_ = false;
      cp_->FlushPending();
      std::vector<std::function<void()>> waiting;
      waiting.swap(after_commit_);
      for (auto& f : waiting) f();
    });
  }
  // The dashboard's snapshot and fleet map as JSON text, computed at most every 500 ms of wall
  // time and shared by every open dashboard (each reads SQL aggregates and walks the fleet).
  const std::string& DashboardText() { return Cached(dashboard_, [&] { return ReplyText(cp_->Dashboard()); }); }
  const std::string& FleetMapText() { return Cached(fleet_map_, [&] { return ReplyText(cp_->FleetMap()); }); }
  const ServeConfig& config() const { return config_; }
  HttpMetrics& metrics() { return metrics_; }
  bool stopping() const { return stopping_; }
  void Add(Session* s) { sessions_.insert(s); }
  void Remove(Session* s) { sessions_.erase(s); }

 private:
  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (!stopping_) Accept();
        return;
      }
      if (static_cast<int>(sessions_.size()) >= config_.max_connections) {
        // Over the cap: a short 503 and close, without reading the request.
        auto s = std::make_shared<tcp::socket>(std::move(socket));
        auto msg = std::make_shared<std::string>(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
            "Content-Length: 106\r\n\r\n"
            "{\"error\":{\"message\":\"too many connections\",\"type\":\"server_error\",\"code\":\"overloaded\",\"param\":null}}\n");
        net::async_write(*s, net::buffer(*msg), [s, msg](beast::error_code, size_t) {
          beast::error_code ignored;
          s->shutdown(tcp::socket::shutdown_both, ignored);
        });
      } else {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<Session>(std::move(socket), *this)->Start();
      }
      Accept();
    });
  }

  void Tick() {
    if (cp_ == nullptr) return;
    cp_->Advance();
    tick_.expires_after(std::chrono::milliseconds(config_.tick.ms));
    tick_.async_wait([this](beast::error_code ec) {
      if (!ec && !stopping_) Tick();
    });
  }

  struct Snapshot {
    std::chrono::steady_clock::time_point at;
    std::string text;
    bool valid = false;
  };
  template <typename Fn>
  const std::string& Cached(Snapshot& s, Fn make) {
    const auto now = std::chrono::steady_clock::now();
    if (!s.valid || now - s.at >= std::chrono::milliseconds(500)) {
      s.text = make();
      s.at = now;
      s.valid = true;
    }
    return s.text;
  }
  Snapshot dashboard_, fleet_map_;

  ControlPlane* cp_;  // null in a standalone gateway
  ServeConfig config_;
  gateway::Gateway* gateway_;
  tcp::acceptor acceptor_;
  tcp::endpoint bound_;
  net::steady_timer tick_;
  HttpMetrics metrics_;
  std::set<Session*> sessions_;
  std::vector<std::function<void()>> after_commit_;  // answers waiting for the group commit
  bool commit_posted_ = false;
  bool stopping_ = false;
};

Session::Session(tcp::socket socket, Server& server) : stream_(std::move(socket)), server_(server) {
  server_.Add(this);
}

Session::~Session() {
  if (token_ != 0) server_.cp()->Unsubscribe(token_);
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
  Respond(routed, t0);
}

void Session::Respond(const Routed& routed, std::chrono::steady_clock::time_point t0) {
  auto res = std::make_shared<http::response<http::string_body>>();
  res->version(11);
  res->result(static_cast<http::status>(routed.reply.status));
  res->set(http::field::server, "landlord");
  if (!routed.reply.content_type.empty() && routed.reply.body.is_string()) {
    res->set(http::field::content_type, routed.reply.content_type);
    res->body() = routed.reply.body.get<std::string>();
    // The server's own request counters follow the control plane's metrics.
    if (routed.route == "GET /metrics") res->body() += server_.metrics().Text();
  } else {
    res->set(http::field::content_type, "application/json");
    res->body() = ReplyText(routed.reply) + "\n";
  }
  if (routed.reply.status == 401) res->set(http::field::www_authenticate, "Bearer");
  if (routed.route == "GET /metrics" && server_.gateway() != nullptr) res->body() += server_.gateway()->MetricsText();
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

std::string FormatEvent(const LeaseEvent& e) {
  return fmt::format("id: {}\nevent: {}\ndata: {}\n\n", e.seq, e.type, e.data);
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

// The dashboard's feed: a `dashboard` snapshot and the `fleet` map at once, then a snapshot
// every second and the map when it changed (checked every 2 s), both skipped while the reader
// is behind, and every lease's events as they are committed (`event: <type>`, as on a lease's
// own stream).
void Session::StartDashboardStream(std::chrono::steady_clock::time_point t0) {
  server_.metrics().Observe("GET /admin/stream", 200,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  auto head = std::make_shared<http::response<http::empty_body>>(http::status::ok, 11);
  head->set(http::field::content_type, "text/event-stream");
  head->set(http::field::cache_control, "no-cache");
  BeginChunked(std::move(head));
  Push(": landlord dashboard\n\n", false);
  if (server_.stopping()) {
    Push("", true);
    return;
  }
  std::weak_ptr<Session> weak = shared_from_this();
  token_ = server_.cp()->Subscribe("*", [weak](const LeaseEvent& e) {
    auto self = weak.lock();
    if (!self || self->closing_) return false;
    self->Push(FormatEvent(e), false);
    return true;
  });
  PushDashboard();
}

void Session::PushDashboard() {
  if (closing_) return;
  // A reader that has not taken the last snapshots yet gets no new one (they would only pile
  // up: a 100,000-GPU map is a few hundred KB); lease events still go out.
  const bool behind = out_.size() > 2;
  if (!behind) Push(fmt::format("event: dashboard\ndata: {}\n\n", server_.DashboardText()), false);
  if (!behind && pushes_++ % 2 == 0) {
    const std::string& map = server_.FleetMapText();
    if (map != last_map_) {
      Push(fmt::format("event: fleet\ndata: {}\n\n", map), false);
      last_map_ = map;
    }
  }
  ping_ = std::make_unique<net::steady_timer>(stream_.get_executor());
  ping_->expires_after(std::chrono::seconds(1));
  // The timer's handler owns the session while it streams (nothing else may be pending).
  ping_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->closing_) return;
    self->PushDashboard();
  });
}

void Session::StartStream(const Routed& routed, std::chrono::steady_clock::time_point t0) {
  if (routed.lease_id == "*") {
    StartDashboardStream(t0);
    return;
  }
  int64_t after = 0;
  std::string_view last = Sv(parser_->get()["Last-Event-ID"]);
  if (!last.empty()) {
    try {
      after = std::stoll(std::string(last));
    } catch (...) {
      after = 0;
    }
  }
  auto past = server_.cp()->LeaseEvents(routed.principal, routed.lease_id, after);
  if (!past.ok()) {
    Routed r = routed;
    r.reply = ErrorReply(StatusCode::kNotFound, "lease_not_found", past.status().message(), "id");
    Respond(r, t0);
    return;
  }
  server_.metrics().Observe(routed.route, 200,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  auto head = std::make_shared<http::response<http::empty_body>>(http::status::ok, 11);
  head->set(http::field::content_type, "text/event-stream");
  head->set(http::field::cache_control, "no-cache");
  BeginChunked(std::move(head));
  bool final = false;
  Push(": landlord lease events\n\n", false);
  for (const auto& e : *past) {
    Push(FormatEvent(e), false);
    final = final || e.final;
  }
  if (final || server_.stopping()) {
    Push("", true);
    return;
  }
  std::weak_ptr<Session> weak = shared_from_this();
  token_ = server_.cp()->Subscribe(routed.lease_id, [weak](const LeaseEvent& e) {
    auto self = weak.lock();
    if (!self || self->closing_) return false;
    self->Push(FormatEvent(e), false);
    if (e.final) {
      self->Push("", true);
      return false;
    }
    return true;
  });
  KeepAlive();
}

void Session::BeginChunked(std::shared_ptr<http::response<http::empty_body>> head) {
  streaming_ = true;
  stream_.expires_never();
  stream_head_ = std::move(head);
  stream_head_->set(http::field::server, "landlord");
  stream_head_->chunked(true);
  stream_sr_ = std::make_shared<http::response_serializer<http::empty_body>>(*stream_head_);
  writing_ = true;
  http::async_write_header(stream_, *stream_sr_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->writing_ = false;
    if (ec) {
      self->closing_ = true;
      return;
    }
    self->WriteNext();
  });
}

void Session::KeepAlive() {
  ping_ = std::make_unique<net::steady_timer>(stream_.get_executor());
  ping_->expires_after(std::chrono::seconds(15));
  // The timer's handler owns the session while it streams (nothing else may be pending).
  ping_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->closing_) return;
    self->Push(": ping\n\n", false);
    self->KeepAlive();
  });
}

void Session::Push(std::string chunk, bool last) {
  if (!out_.empty() && out_.back().second) return;  // already ended
  if (out_.size() > 10'000) {  // a watcher that does not read: drop it
    closing_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    return;
  }
  out_.emplace_back(std::move(chunk), last);
  if (!writing_) WriteNext();
}

void Session::WriteNext() {
  if (writing_ || out_.empty()) return;
  writing_ = true;
  auto [text, last] = out_.front();
  auto buf = std::make_shared<std::string>(std::move(text));
  auto done = [self = shared_from_this(), buf, last = last](beast::error_code ec, size_t) {
    self->writing_ = false;
    self->out_.pop_front();
    if (ec) {
      self->closing_ = true;
      self->out_.clear();
      if (self->ping_) self->ping_->cancel();
      return;
    }
    if (last && self->proxying_ && self->proxy_keep_ && !self->server_.stopping()) {
      // A gateway stream ended: the connection takes the next request.
      self->proxying_ = false;
      self->streaming_ = false;
      self->Read();
      return;
    }
    if (last) {
      self->closing_ = true;
      self->proxying_ = false;
      if (self->ping_) self->ping_->cancel();
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    self->WriteNext();
  };
  if (last) {
    net::async_write(stream_, http::make_chunk_last(), std::move(done));
  } else {
    net::async_write(stream_, http::make_chunk(net::buffer(*buf)), std::move(done));
  }
}

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

void Session::HandleGateway() {
  auto& req = parser_->get();
  gateway::GatewayRequest g;
  g.method = std::string(Sv(req.method_string()));
  g.target = std::string(Sv(req.target()));
  g.authorization = std::string(Sv(req[http::field::authorization]));
  g.body = std::move(req.body());
  std::string_view path = std::string_view(g.target).substr(0, g.target.find('?'));
  if (path.starts_with("/v1/models/")) path = "/v1/models/{id}";  // a bounded set of metric labels
  gateway_route_ = fmt::format("{} {}", gateway::MethodLabel(g.method), path);
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

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(net::io_context& ioc, ControlPlane& cp, const ServeConfig& config,
                                                      gateway::Gateway* gw) {
  auto s = std::make_unique<Server>(ioc, &cp, config, gw);
  LL_RETURN_IF_ERROR(s->Listen());
  return std::unique_ptr<HttpServer>(std::move(s));
}

Result<std::unique_ptr<HttpServer>> HttpServer::StartGateway(net::io_context& ioc, const ServeConfig& config,
                                                             gateway::Gateway& gw) {
  auto s = std::make_unique<Server>(ioc, nullptr, config, &gw);
  LL_RETURN_IF_ERROR(s->Listen());
  return std::unique_ptr<HttpServer>(std::move(s));
}

}  // namespace ll::api
