// The HTTP/1.1 server of `landlord serve` on Boost.Beast: one I/O thread per server (the
// control plane is single-threaded; a standalone gateway runs one server per event loop), keep-alive, a body limit, a per-request timeout against slow or idle
// clients, a connection cap, Server-Sent Events for lease watchers, request metrics, and a
// graceful stop (in-flight requests finish, streams end, then run() returns).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "api/config.h"
#include "api/control_plane.h"
#include "gateway/gateway.h"

namespace ll::api {

class HttpServer {
 public:
  // Binds `config.listen` ("host:port"; port 0 picks a free one) on `ioc`. With `gw`, the
  // model API's routes (gateway::Gateway::Handles) go to it.
  static Result<std::unique_ptr<HttpServer>> Start(boost::asio::io_context& ioc, ControlPlane& cp,
                                                   const ServeConfig& config, gateway::Gateway* gw = nullptr);
  virtual ~HttpServer() = default;
  // "127.0.0.1:PORT" as bound.
  virtual std::string address() const = 0;
  // A standalone gateway: the model API, /healthz and /metrics only. With `reuse_port` the
  // listener shares its port with the other event loops' of the process (SO_REUSEPORT).
  static Result<std::unique_ptr<HttpServer>> StartGateway(boost::asio::io_context& ioc, const ServeConfig& config,
                                                          gateway::Gateway& gw, bool reuse_port = false);
  // This server's own metrics: its requests and its gateway's counters (Prometheus text). On
  // its io_context's thread only.
  virtual std::string MetricsText() = 0;
  // `GET /metrics` answers, instead of MetricsText(), what `gather` hands its callback (called
  // on this server's thread): a gateway with several event loops sums them all.
  using MetricsGather = std::function<void(std::function<void(std::string)>)>;
  virtual void SetMetricsGather(MetricsGather gather) = 0;
  // Open client connections (after Shutdown: those still finishing a request).
  virtual size_t connections() const = 0;
  // Drops every connection at once (after Shutdown's grace period).
  virtual void CloseAll() = 0;
  // Stops accepting, ends event streams, lets in-flight requests finish.
  virtual void Shutdown() = 0;
};

}  // namespace ll::api
