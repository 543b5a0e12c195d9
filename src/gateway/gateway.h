// The OpenAI-compatible model API: `GET /v1/models` (and `/v1/models/{id}`), `POST /v1/chat/completions`,
// `/v1/responses`, `/v1/completions` and `/v1/embeddings`, proxied to model replicas as a filter
// chain (Envoy `decodeHeaders` style, filter.h: each filter answers or lets the request go on):
//
//   auth    the tenant's API key (auth_filter.h; 401 invalid_api_key)
//   responses  `/v1/responses` only: the request becomes a chat completions one (responses_filter.h);
//           the route filter translates the answer back
//   models  `GET /v1/models[/{id}]`, answered from the router's models (models_filter.h)
//   parse   only the fields the filters need, and what the request asks of the limits and the
//           budget (parse_filter.h; 400 naming the field)
//   limits  requests and tokens per minute per key (limits_filter.h; 429 rate_limit_exceeded,
//           retry-after), kept by the ledger so that every gateway in front of it shares them
//   budget  holds the request's worst case on the prepaid balance (budget_filter.h; 429
//           insufficient_quota, x-should-retry: false)
//   meter   settles the hold to the tokens used and records them once (meter_filter.h),
//           interrupted streams included. An answer completes only once its usage is durable:
//           a whole body is sent, and a stream's usage chunk and `[DONE]` are, after the
//           settlement's commit (its tokens never wait for it)
//   route   least outstanding tokens with prefix affinity (route_filter.h, router.h); a replica
//           that fails before the first byte is ejected and the request retried on another
//
// The ledger behind auth, limits, budget and meter is one client per filter (ledger_client.h):
// the control plane in-process, or over HTTP from a standalone gateway.
//
// Single-threaded: everything runs on the one io_context given (the control plane's thread).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "core/clock.h"
#include "core/money.h"
#include "gateway/engine_replicas.h"
#include "gateway/fake_model.h"
#include "gateway/filter.h"
#include "gateway/filter_chain.h"
#include "gateway/ledger_client.h"
#include "gateway/limits.h"
#include "gateway/models_filter.h"
#include "gateway/options.h"
#include "gateway/router.h"
#include "market/price_book.h"

namespace ll::gateway {

struct ConnectionPool;
struct Upstreams;

// Model replicas started and stopped by the fleet (the control plane places each on GPUs of
// the fleet as an inference holder): the gateway routes to them.
class ReplicaHost {
 public:
  virtual ~ReplicaHost() = default;
  // Starts a replica of `model` and routes to it; returns its id.
  virtual Result<std::string> StartReplica(const std::string& model) = 0;
  // Reclaim notice: no new requests; in-flight ones go on until StopReplica.
  virtual void DrainReplica(const std::string& id) = 0;
  // A replica started elsewhere (a Slurm job) is up at `url` (http://HOST:PORT): route to it.
  virtual Status AddEndpoint(const std::string& id, const std::string& model, const std::string& url) = 0;
  // The GPUs are gone: the replica stops (what is still in flight fails over or errors).
  virtual void StopReplica(const std::string& id) = 0;
};

class Gateway final : public ReplicaHost {
 public:
  // Registers the static upstreams and starts the simulated replicas that hold no fleet GPUs
  // (gpus_per_replica = 0); the others start when the fleet places them (StartReplica).
  static Result<std::unique_ptr<Gateway>> Create(boost::asio::io_context& ioc, GatewayOptions options,
                                                 market::PriceBook prices, Accounts* accounts, const Clock* clock);
  ~Gateway() override;

  // Whether `target` is one of the gateway's routes.
  static bool Handles(std::string_view target);
  void Handle(GatewayRequest req, std::shared_ptr<Downstream> down);

  // ReplicaHost: replicas placed by the fleet, simulated or real engine processes (routed to
  // once their server answers /health 200; one that exits leaves the router).
  Result<std::string> StartReplica(const std::string& model) override;
  Status AddEndpoint(const std::string& id, const std::string& model, const std::string& url) override;
  void DrainReplica(const std::string& id) override;
  void StopReplica(const std::string& id) override;
  // The simulated replicas (to kill one in tests).
  FakeModel* SimReplica(const std::string& id);

  const Router& router() const { return router_; }
  // Prometheus text: requests, tokens, retries, failures, affinity, replicas.
  std::string MetricsText() const;
  // Stops the simulated replicas and drops every upstream connection: what is pending ends
  // (aborted) at the next turns of the io_context, which the caller runs before destroying
  // the gateway.
  void Shutdown();
  // In-flight requests (graceful shutdown waits for them).
  int64_t in_flight() const { return in_flight_; }

  using Stats = GatewayStats;
  const Stats& stats() const { return stats_; }

 private:
  class Call;  // a FilterChain the gateway counts in flight (and aborts on shutdown)
  Gateway(boost::asio::io_context& ioc, GatewayOptions options, market::PriceBook prices, Accounts* accounts,
          const Clock* clock);
  // The filters of a request for `path` (an API route): false if the method is not the
  // route's (the caller answers 405 naming `allowed`).
  bool AddFilters(Call& call, std::string_view path, std::string_view method, std::string_view* allowed);

  boost::asio::io_context& ioc_;
  GatewayOptions options_;
  market::PriceBook prices_;
  Accounts* accounts_;
  const Clock* clock_;
  Router router_;
  std::unique_ptr<ConnectionPool> pool_;  // idle keep-alive connections per replica
  std::unique_ptr<Upstreams> upstreams_;  // what the route filters share
  uint64_t boot_id_ = 0;  // request ids are unique across restarts: idempotency keys use them
  uint64_t next_request_ = 0;
  Result<std::string> StartSim(const SimModelConfig& m);
  Result<std::string> StartEngine(const SimModelConfig& m);
  void OnEngineReady(const std::string& id, const std::string& host, const std::string& port);
  // Routes to `r`; a model seen first is registered now (its `created` in `/v1/models`).
  void AddReplica(Replica r);
  ModelCatalog catalog_;
  std::vector<std::pair<std::string, std::unique_ptr<FakeModel>>> sim_;
  std::map<std::string, std::string> engine_models_;  // engine replica id → its model
  std::unique_ptr<EngineReplicas> engines_;
  int next_replica_ = 0;
  int64_t in_flight_ = 0;
  bool stopping_ = false;
  std::set<Call*> live_;
  Stats stats_;
  StatusCounts by_code_;  // (model, status) → requests
};

}  // namespace ll::gateway
