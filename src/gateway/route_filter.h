// route: the terminal filter, which proxies the request to a replica (Envoy's router filter).
// The replica is the router's pick (least outstanding tokens with prefix affinity, router.h); a
// replica that fails before the first byte is ejected and the request tried on another (up to
// `max_attempts`), and a kept-alive connection the replica had closed is tried once more on a
// fresh one. A slow replica that sends no header within `first_byte_timeout` answers 504
// without a retry (another would only generate it again).
//
// Streams pass through event by event without buffering the response. The upstream is always
// asked for usage (`stream_options.include_usage`); its usage chunk is dropped if the client
// did not ask for it. From the usage chunk or `[DONE]` on, events wait for the usage to be
// durable (the chain's completion: meter). A stream that breaks after its first byte ends with
// an error event (a stream that just stops looks like success to SDKs), and only what was
// delivered is billed.
//
// A Responses API request (RequestState::responses) goes upstream as chat; its answer comes back
// translated (responses.h): a whole body into a Response object, a stream event by event into
// Responses events, its error event in the Responses shape.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "core/clock.h"
#include "gateway/filter.h"
#include "gateway/options.h"
#include "gateway/responses.h"
#include "gateway/router.h"
#include "gateway/upstream_event.h"

namespace ll::gateway {

// Idle keep-alive connections to the replicas, and their resolved addresses, by replica id.
struct ConnectionPool {
  static constexpr size_t kMaxIdle = 256;
  std::map<std::string, std::vector<std::unique_ptr<boost::beast::tcp_stream>>> idle;
  std::map<std::string, boost::asio::ip::tcp::resolver::results_type> endpoints;
  boost::asio::ip::tcp::resolver resolver;
  explicit ConnectionPool(boost::asio::io_context& ioc) : resolver(ioc) {}
  // A replica that goes: its connections and address too.
  void Forget(const std::string& replica) {
    idle.erase(replica);
    endpoints.erase(replica);
  }
};

// What every request's route filter shares: the gateway's. All outlive the filters.
struct Upstreams {
  boost::asio::io_context& ioc;
  const GatewayOptions& options;
  Router& router;
  ConnectionPool& pool;
  const Clock* clock;
  GatewayStats& stats;
  const bool& stopping;  // shutting down: aborted attempts try no other replica
};

class RouteFilter final : public StreamFilter {
 public:
  explicit RouteFilter(const Upstreams& up) : up_(up) {}
  // Sends the request upstream and answers it: always stops. REQUIRES: `call` and `admission`
  // set; the request's body is moved into the upstream request.
  FilterStatus DecodeBody(RequestState& r) override;
  // Drops the upstream connection (its pending operations end as aborted).
  void Abort() override { CloseConn(); }

 private:
  void Attempt();
  void Connect();
  void Send();
  void ReadHeader();
  void OnHeader();
  void ReadBody();
  void OnBytes(const char* data, size_t n);
  // One complete server-sent event of a stream: forwarded, or held with the tail.
  void OnEvent(std::string_view event, std::string* out);
  void Finish();
  // The answer's last bytes, once its usage is durable (or could not be made so).
  void EndStream(const Status& durable);
  void Answer(const Status& durable, const std::string& content_type);
  void FailedBeforeFirstByte(const std::string& why);
  void TimedOut();
  void FailedMidStream(const std::string& why);
  // A stream's error event, in the shape of the API the client called.
  std::string ErrorEvent(std::string_view code, const std::string& message, std::string_view type);
  void CloseConn();
  void EndRoute();

  const Upstreams& up_;
  RequestState* r_ = nullptr;  // the chain's, set by DecodeBody
  // Attempts.
  std::vector<std::string> tried_;
  std::string errors_;      // why each tried replica failed
  std::string host_, port_;  // the replica may leave the router while we talk to it
  int64_t route_tokens_ = 0;
  std::unique_ptr<boost::beast::tcp_stream> conn_;
  bool reused_ = false, stale_retried_ = false;
  boost::beast::flat_buffer buf_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::buffer_body>> parser_;
  // The upstream request: its head (per attempt: the Host differs) and body, written together.
  std::string uphead_, upbody_;
  char chunk_[16 * 1024];
  // The response.
  int status_ = 0;
  bool streaming_ = false;
  std::string body_;     // a whole (non-streamed) response
  std::string pending_;  // a partial stream event
  bool done_seen_ = false;
  // From the usage chunk or `[DONE]` on, events wait here for the usage's commit.
  bool holding_ = false;
  std::string tail_;
  int64_t delivered_ = 0;  // events with generated text sent to the client
  bool has_usage_ = false;
  UpstreamUsage usage_;  // the upstream's own counts, billed when it sent them
  UpstreamUsage billed_;  // what the meter charged (a Response shows it as its usage)
  std::unique_ptr<ResponsesStream> responses_;  // a Responses stream's translation
};

}  // namespace ll::gateway
