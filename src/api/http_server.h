// The HTTP/1.1 server of `landlord serve` on Boost.Beast: one I/O thread (the control plane
// is single-threaded), keep-alive, a body limit, a per-request timeout against slow or idle
// clients, a connection cap, Server-Sent Events for lease watchers, request metrics, and a
// graceful stop (in-flight requests finish, streams end, then run() returns).
#pragma once

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
  // A standalone gateway: the model API, /healthz and /metrics only.
  static Result<std::unique_ptr<HttpServer>> StartGateway(boost::asio::io_context& ioc, const ServeConfig& config,
                                                          gateway::Gateway& gw);
  // Open client connections (after Shutdown: those still finishing a request).
  virtual size_t connections() const = 0;
  // Drops every connection at once (after Shutdown's grace period).
  virtual void CloseAll() = 0;
  // Stops accepting, ends event streams, lets in-flight requests finish.
  virtual void Shutdown() = 0;
};

}  // namespace ll::api
