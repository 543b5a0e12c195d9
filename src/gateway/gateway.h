// The OpenAI-compatible model API: `GET /v1/models` (and `/v1/models/{id}`), `POST /v1/chat/completions`,
// `/v1/completions` and `/v1/embeddings`, proxied to model replicas as a filter chain (Envoy
// `decodeHeaders` style: each filter answers or lets the request go on):
//
//   auth    the tenant's API key (401 invalid_api_key)
//   parse   only the fields the filters need (simdjson on demand; 400 naming the field)
//   limits  requests and tokens per minute per key (429 rate_limit_exceeded, retry-after)
//   budget  holds the request's worst case on the prepaid balance (429 insufficient_quota,
//           x-should-retry: false); both in one call to the ledger, which keeps the limits so
//           that every gateway in front of it shares them
//   route   least outstanding tokens with prefix affinity (router.h); a replica that fails
//           before the first byte is ejected and the request retried on another
//   meter   settles the hold to the tokens used and records them once (idempotency key
//           request id + attempt), interrupted streams included. An answer completes only
//           once its usage is durable: a whole body is sent, and a stream's usage chunk and
//           `[DONE]` are, after the settlement's commit (its tokens never wait for it)
//
// Streams pass through event by event without buffering the response. The upstream is always
// asked for usage (`stream_options.include_usage`); its usage chunk is dropped if the client
// did not ask for it. A stream that breaks after its first byte ends with an error event (a
// stream that just stops looks like success to SDKs), and only what was delivered is billed.
//
// Single-threaded: everything runs on the one io_context given (the control plane's thread).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "core/clock.h"
#include "core/money.h"
#include "gateway/fake_model.h"
#include "gateway/limits.h"
#include "gateway/router.h"
#include "market/price_book.h"

namespace ll::gateway {

// A static upstream: the owner's own model server (vLLM, SGLang, llama.cpp server, ...).
struct UpstreamConfig {
  std::string model;
  std::string url;  // http://HOST:PORT
};

// Simulated replicas started in-process (fake_model.h), as the sim fleet's model servers.
struct SimModelConfig {
  std::string model;
  int replicas = 2;
  // GPUs each replica holds on the fleet (an inference holder the allocator places, drains
  // and reclaims like any outsider); 0: the replicas run beside the fleet and hold none.
  int gpus_per_replica = 8;
  double tokens_per_s = 50;
  Duration first_token = Duration::Millis(50);
};

struct GatewayOptions {
  int64_t rpm = 600;            // requests per minute per key (0: no limit)
  int64_t tpm = 1'000'000;      // tokens per minute per key (0: no limit)
  int64_t max_output_tokens = 4096;  // a request without max_tokens is held for this many
  size_t prefix_bytes = 4096;   // prompt bytes hashed for affinity (about two 512-token KV blocks)
  int max_attempts = 3;         // replicas tried before the first byte
  Duration connect_timeout = Duration::Seconds(2);
  // Connect to the response header: a non-streamed answer's whole generation (504 past it).
  Duration first_byte_timeout = Duration::Seconds(600);
  Duration idle_timeout = Duration::Seconds(60);  // between stream bytes
  size_t max_response_bytes = 64u << 20;
  RouterOptions router;
  std::vector<UpstreamConfig> upstreams;
  std::vector<SimModelConfig> sim_models;
};

// What the gateway needs from the ledger: the control plane, in `landlord serve` (answers at
// once) or over HTTP from a standalone `landlord gateway` (answers later, on the gateway's
// io_context). Callbacks run on the gateway's thread. Rate limits are the ledger's too, so
// that every gateway in front of one control plane shares them (no "limit × gateways").
class Accounts {
 public:
  struct Key {
    std::string tenant_id;
    std::string key_id;
    int64_t rpm = 0, tpm = 0;  // the key's own limits; 0: the gateway's
  };
  // One request asking in: its share of the key's rate limits and its worst case's cost.
  struct Admission {
    std::string hold_id;  // the request id
    std::string tenant_id;
    std::string key_id;
    int64_t rpm = 0, tpm = 0;  // the limits in force (0: that limit is off)
    int64_t tokens = 0;        // reserved against `tpm`: the prompt's estimate + the output ceiling
    Money amount;              // held on the prepaid balance
  };
  struct Usage {
    std::string key;  // idempotency key: request id + attempt
    std::string tenant_id;
    std::string model;
    int64_t input_tokens = 0, output_tokens = 0;
  };
  virtual ~Accounts() = default;
  // The tenant key's owner, or nullopt for a key that is not a tenant's; a Status that is not
  // Ok when the ledger could not be asked (the gateway answers 503, not 401).
  virtual void Authenticate(const std::string& api_key,
                            std::function<void(Status, std::optional<Key>)> done) = 0;
  // Takes the request from the key's rate limits, then holds `amount` of the tenant's prepaid
  // balance under `hold_id` (or neither). `done` gets the limits' decision (not ok: refused by
  // them) and, when they let it in, the hold's status: kResourceExhausted with the reason when
  // the balance is short, another error when the ledger cannot be reached.
  virtual void Admit(const Admission& a, std::function<void(Status, RateLimits::Decision)> done) = 0;
  // Charges the usage (never more than the hold), releases the rest of the hold and settles the
  // token reservation to the tokens used. `durable` (may be empty) is called once, on the
  // gateway's thread, when the usage is committed (Ok: a kill -9 cannot lose it now) or could
  // not be (the ledger gave up): the answer's last bytes wait for it.
  virtual void Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) = 0;
};

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

// The client side of one request, implemented by the HTTP server's connection.
class Downstream {
 public:
  struct Head {
    int status = 200;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
  };
  virtual ~Downstream() = default;
  // A whole response.
  virtual void Send(Head head, std::string body) = 0;
  // A streamed one: the head, chunks, then End().
  virtual void Begin(Head head) = 0;
  virtual void Chunk(std::string data) = 0;
  virtual void End() = 0;
  // False once the client is gone (the gateway then stops the upstream).
  virtual bool open() const = 0;
};

struct GatewayRequest {
  std::string method;
  std::string target;
  std::string authorization;
  std::string body;
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

  // ReplicaHost: simulated replicas placed by the fleet.
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

  struct Stats {
    int64_t requests = 0, retries = 0, upstream_failures = 0, interrupted_streams = 0;
    int64_t input_tokens = 0, output_tokens = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  class Call;
  friend class Call;
  Gateway(boost::asio::io_context& ioc, GatewayOptions options, market::PriceBook prices, Accounts* accounts,
          const Clock* clock);

  boost::asio::io_context& ioc_;
  GatewayOptions options_;
  market::PriceBook prices_;
  Accounts* accounts_;
  const Clock* clock_;
  Router router_;
  struct Pool;  // idle keep-alive connections per replica
  std::unique_ptr<Pool> pool_;
  uint64_t boot_id_ = 0;  // request ids are unique across restarts: idempotency keys use them
  uint64_t next_request_ = 0;
  Result<std::string> StartSim(const SimModelConfig& m);
  // Routes to `r`; a model seen first is registered now (its `created` in `/v1/models`).
  void AddReplica(Replica r);
  // The model object of `GET /v1/models` and `/v1/models/{id}`.
  std::string ModelJson(const std::string& model) const;
  std::map<std::string, int64_t> model_created_;  // unix seconds
  int64_t started_s_ = 0;
  std::vector<std::pair<std::string, std::unique_ptr<FakeModel>>> sim_;
  int next_replica_ = 0;
  int64_t in_flight_ = 0;
  bool stopping_ = false;
  std::set<Call*> live_;
  Stats stats_;
  std::map<std::pair<std::string, int>, int64_t> by_code_;  // (model, status) → requests
};

}  // namespace ll::gateway
