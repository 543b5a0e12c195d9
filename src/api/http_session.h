// Private to the HTTP server's files (http_server.cc, http_event_streams.cc): one client
// connection (Session) and the server that accepts and owns them (Server). Transport only:
// requests go to Route (routes.h), the model API's to the gateway. Everything runs on the
// server's one io_context thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "api/http_metrics.h"
#include "api/http_server.h"
#include "api/routes.h"
#include "gateway/http_util.h"

namespace ll::api::internal {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Boost 1.74's Beast has its own string_view.
inline std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

class Server;

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
  // `own_metrics`: a `GET /metrics` answer gets this server's own metrics appended (not when
  // its body was gathered from every event loop already).
  void Respond(const Routed& routed, std::chrono::steady_clock::time_point t0, bool own_metrics = true);
  void StartStream(const Routed& routed, std::chrono::steady_clock::time_point t0);
  // A workload's log, followed until it ends; a metadata long poll (http_workload_streams.cc).
  void StartLogFollow(const Routed& routed, std::chrono::steady_clock::time_point t0);
  void PushLogs();
  void WaitNotice(const Routed& routed, std::chrono::steady_clock::time_point t0);
  void AnswerNotice(const Routed& routed, std::chrono::steady_clock::time_point t0);
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
  std::string log_lease_;  // the lease whose workload log is followed
  uint64_t log_sub_ = 0, log_offset_ = 0;
  bool held_ = false;  // a metadata long poll waits
  size_t discarded_ = 0;
};

class Server final : public HttpServer {
 public:
  Server(net::io_context& ioc, ControlPlane* cp, const ServeConfig& config, gateway::Gateway* gw, bool reuse_port = false)
      : cp_(cp), config_(config), gateway_(gw), acceptor_(ioc), tick_(ioc), reuse_port_(reuse_port) {}

  Status Listen() {
    LL_RETURN_IF_ERROR(gateway::OpenAcceptor(acceptor_, config_.listen, reuse_port_));
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

  std::string MetricsText() override {
    std::string text = metrics_.Text();
    if (gateway_ != nullptr) text += gateway_->MetricsText();
    return text;
  }
  void SetMetricsGather(MetricsGather gather) override { gather_ = std::move(gather); }
  const MetricsGather& gather() const { return gather_; }

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
      std::vector<std::function<void()>> waiting;
      waiting.swap(after_commit_);
      // On the commit thread when the control plane has one: the loop serves on meanwhile.
      cp_->FlushAsync([waiting = std::move(waiting)] {
        for (auto& f : waiting) f();
      });
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
  bool reuse_port_ = false;
  MetricsGather gather_;
};

}  // namespace ll::api::internal
