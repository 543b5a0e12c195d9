#include "gateway/gateway.h"

#include <random>

#include <fmt/format.h>

#include "gateway/auth_filter.h"
#include "gateway/budget_filter.h"
#include "gateway/http_util.h"
#include "gateway/limits_filter.h"
#include "gateway/meter_filter.h"
#include "gateway/parse_filter.h"
#include "gateway/responses_filter.h"
#include "gateway/route_filter.h"

namespace ll::gateway {

namespace net = boost::asio;

namespace {

constexpr std::string_view kModelPrefix = "/v1/models/";

}  // namespace

// One request's filter chain, counted in flight while it lives.
class Gateway::Call final : public FilterChain {
 public:
  Call(Gateway& g, RequestState state, std::shared_ptr<Downstream> down)
      : FilterChain(std::move(state), std::move(down), &g.by_code_), g_(g) {
    ++g_.in_flight_;
    g_.live_.insert(this);
  }
  ~Call() override {
    --g_.in_flight_;
    g_.live_.erase(this);
  }

 private:
  Gateway& g_;
};

Gateway::Gateway(net::io_context& ioc, GatewayOptions options, market::PriceBook prices, Accounts* accounts,
                 const Clock* clock)
    : ioc_(ioc),
      options_(std::move(options)),
      prices_(std::move(prices)),
      accounts_(accounts),
      clock_(clock),
      router_(options_.router),
      pool_(std::make_unique<ConnectionPool>(ioc)),
      upstreams_(std::make_unique<Upstreams>(
          Upstreams{ioc, options_, router_, *pool_, clock_, stats_, stopping_})),
      catalog_(clock_->Now().ms / 1000) {
  std::random_device rd;
  boot_id_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  engines_ = std::make_unique<EngineReplicas>(
      ioc, EngineReplicas::Callbacks{
               .ready = [this](const std::string& id, const std::string& host,
                               const std::string& port) { OnEngineReady(id, host, port); },
               .failed =
                   [this](const std::string& id, const std::string& why) {
                     fmt::print(stderr, "gateway: {}\n", why);
                     engine_models_.erase(id);
                     router_.Remove(id);
                     pool_->Forget(id);
                   },
               .down =
                   [this](const std::string& id, const std::string& why) {
                     fmt::print(stderr, "gateway: {}\n", why);
                     router_.SetDown(id);  // routed around; its requests in flight fail over
                     pool_->Forget(id);
                   }});
}

// First ready: routed to from now on. Ready again after a restart: up at its new port, still
// draining if it was reclaimed meanwhile.
void Gateway::OnEngineReady(const std::string& id, const std::string& host, const std::string& port) {
  auto it = engine_models_.find(id);
  if (it == engine_models_.end()) return;
  if (router_.SetUp(id, host, port)) {
    fmt::print(stderr, "gateway: engine replica `{}` is back at {}:{}\n", id, host, port);
    return;
  }
  Replica r;
  r.id = id;
  r.model = it->second;
  r.host = host;
  r.port = port;
  AddReplica(std::move(r));
}

Gateway::~Gateway() = default;

Result<std::unique_ptr<Gateway>> Gateway::Create(net::io_context& ioc, GatewayOptions options,
                                                 market::PriceBook prices, Accounts* accounts, const Clock* clock) {
  std::unique_ptr<Gateway> g(new Gateway(ioc, std::move(options), std::move(prices), accounts, clock));
  for (const UpstreamConfig& u : g->options_.upstreams) {
    Replica r;
    r.id = fmt::format("rep_up{}", ++g->next_replica_);
    r.model = u.model;
    LL_RETURN_IF_ERROR(ParseHttpUrl(u.url, &r.host, &r.port));
    g->AddReplica(std::move(r));
  }
  for (const SimModelConfig& m : g->options_.sim_models) {
    if (m.gpus_per_replica > 0 || g->options_.engines.count(m.model) != 0) {
      // Placed by the fleet, or an engine loading its model: known to the router (a model
      // with no replica running yet is unavailable, 503, rather than unknown, 404) through a
      // placeholder that never routes.
      Replica r;
      r.id = "rep_" + m.model + "_unplaced";
      r.model = m.model;
      r.draining = true;
      g->AddReplica(std::move(r));
      if (m.gpus_per_replica > 0) continue;
    }
    for (int i = 0; i < m.replicas; ++i) LL_RETURN_IF_ERROR(g->StartSim(m).status());
  }
  return g;
}

void Gateway::AddReplica(Replica r) {
  catalog_.Register(r.model, clock_->Now().ms / 1000);  // a model's first replica: when it was registered
  router_.Add(std::move(r));
}

Result<std::string> Gateway::StartSim(const SimModelConfig& m) {
  if (options_.engines.count(m.model) != 0) return StartEngine(m);
  FakeModelOptions fo;
  fo.model = m.model;
  fo.name = fmt::format("rep_sim{}", ++next_replica_);
  fo.tokens_per_s = m.tokens_per_s;
  fo.first_token = m.first_token;
  fo.exit_on_crash = false;
  fo.clock = clock_;  // `created` in the gateway's clock
  LL_ASSIGN_OR_RETURN(auto fake, FakeModel::Start(ioc_, fo));
  Replica r;
  r.id = fo.name;
  r.model = m.model;
  const std::string addr = fake->address();
  r.host = addr.substr(0, addr.rfind(':'));
  r.port = addr.substr(addr.rfind(':') + 1);
  AddReplica(std::move(r));
  sim_.emplace_back(fo.name, std::move(fake));
  return fo.name;
}

Result<std::string> Gateway::StartReplica(const std::string& model) {
  for (const SimModelConfig& m : options_.sim_models) {
    if (m.model == model) return StartSim(m);
  }
  return Status::NotFound(fmt::format("no simulated model `{}` in [[gateway.sim_models]]", model));
}

Status Gateway::AddEndpoint(const std::string& id, const std::string& model, const std::string& url) {
  Replica r;
  r.id = id;
  r.model = model;
  LL_RETURN_IF_ERROR(ParseHttpUrl(url, &r.host, &r.port));
  if (router_.Find(id) != nullptr) router_.Remove(id);
  AddReplica(std::move(r));
  return Status::Ok();
}

Result<std::string> Gateway::StartEngine(const SimModelConfig& m) {
  const std::string id = fmt::format("rep_eng{}", ++next_replica_);
  LL_RETURN_IF_ERROR(engines_->Start(id, options_.engines.at(m.model)));
  engine_models_[id] = m.model;  // routed to once ready
  return id;
}

void Gateway::StopReplica(const std::string& id) {
  router_.Remove(id);
  pool_->Forget(id);
  if (engine_models_.erase(id) != 0) {
    engines_->Stop(id);
    return;
  }
  for (auto it = sim_.begin(); it != sim_.end(); ++it) {
    if (it->first == id) {
      it->second->Kill();
      sim_.erase(it);
      return;
    }
  }
}

bool Gateway::Handles(std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (path.starts_with(kModelPrefix) && path.size() > kModelPrefix.size()) return true;  // GET /v1/models/{id}
  return path == "/v1/models" || path == "/v1/chat/completions" || path == "/v1/completions" ||
         path == "/v1/embeddings" || path == "/v1/responses";
}

void Gateway::Handle(GatewayRequest req, std::shared_ptr<Downstream> down) {
  ++stats_.requests;
  RequestState state;
  state.id = fmt::format("req_{:016x}{:08x}", boot_id_, ++next_request_);
  state.request = std::move(req);
  auto call = std::make_shared<Call>(*this, std::move(state), std::move(down));
  const std::string_view target = call->state().request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  std::string_view allowed;
  if (!AddFilters(*call, path, call->state().request.method, &allowed)) {
    call->SendLocalReply({.status = 405,
                          .code = "method_not_allowed",
                          .message = fmt::format("use {} on `{}`", allowed, path)});
    return;
  }
  call->Start();
}

bool Gateway::AddFilters(Call& call, std::string_view path, std::string_view method, std::string_view* allowed) {
  const bool models = path == "/v1/models" || path.starts_with(kModelPrefix);
  *allowed = models ? "GET" : "POST";
  if (method != *allowed) return false;
  call.Add(std::make_unique<AuthFilter>(*accounts_));
  if (models) {
    std::optional<std::string> id;
    if (path != "/v1/models") id = PercentDecode(path.substr(kModelPrefix.size()));
    call.Add(std::make_unique<ModelsFilter>(router_, catalog_, std::move(id)));
    return true;
  }
  // The Responses API is served as chat (responses_filter.h); the route filter translates back.
  const bool responses = path == "/v1/responses";
  if (responses) call.Add(std::make_unique<ResponsesFilter>(clock_));
  const Endpoint e = path == "/v1/chat/completions" || responses ? Endpoint::kChatCompletions
                     : path == "/v1/completions"    ? Endpoint::kCompletions
                                                    : Endpoint::kEmbeddings;
  call.Add(std::make_unique<ParseFilter>(e, options_, prices_, router_));
  call.Add(std::make_unique<LimitsFilter>(*accounts_));
  call.Add(std::make_unique<BudgetFilter>(*accounts_));
  call.Add(std::make_unique<MeterFilter>(*accounts_, stats_));
  call.Add(std::make_unique<RouteFilter>(*upstreams_));
  return true;
}

void Gateway::Shutdown() {
  stopping_ = true;  // aborted calls do not try another replica
  for (auto& [name, fake] : sim_) fake->Kill();
  for (const auto& [id, model] : engine_models_) engines_->Stop(id);
  engine_models_.clear();
  auto live = live_;
  for (Call* c : live) c->Abort();
  pool_->idle.clear();
}

void Gateway::DrainReplica(const std::string& id) {
  router_.Drain(id);
  pool_->idle.erase(id);  // idle connections go; in-flight requests finish on theirs
}

FakeModel* Gateway::SimReplica(const std::string& id) {
  for (auto& [name, fake] : sim_) {
    if (name == id) return fake.get();
  }
  return nullptr;
}

std::string Gateway::MetricsText() const {
  std::string out =
      "# HELP landlord_gateway_requests_total model API requests by model and status\n"
      "# TYPE landlord_gateway_requests_total counter\n";
  for (const auto& [k, n] : by_code_) {
    out += fmt::format("landlord_gateway_requests_total{{model=\"{}\",code=\"{}\"}} {}\n", k.first, k.second, n);
  }
  out += fmt::format(
      "# HELP landlord_gateway_tokens_total tokens metered\n# TYPE landlord_gateway_tokens_total counter\n"
      "landlord_gateway_tokens_total{{kind=\"input\"}} {}\nlandlord_gateway_tokens_total{{kind=\"output\"}} {}\n"
      "# HELP landlord_gateway_retries_total attempts retried on another replica before the first byte\n"
      "# TYPE landlord_gateway_retries_total counter\nlandlord_gateway_retries_total {}\n"
      "# HELP landlord_gateway_upstream_failures_total replica failures seen\n"
      "# TYPE landlord_gateway_upstream_failures_total counter\nlandlord_gateway_upstream_failures_total {}\n"
      "# HELP landlord_gateway_interrupted_streams_total streams that ended early\n"
      "# TYPE landlord_gateway_interrupted_streams_total counter\nlandlord_gateway_interrupted_streams_total {}\n"
      "# HELP landlord_gateway_prefix_affinity_total requests sent to their prefix's preferred replica\n"
      "# TYPE landlord_gateway_prefix_affinity_total counter\nlandlord_gateway_prefix_affinity_total {}\n"
      "# HELP landlord_gateway_in_flight requests in flight\n# TYPE landlord_gateway_in_flight gauge\n"
      "landlord_gateway_in_flight {}\n",
      stats_.input_tokens, stats_.output_tokens, stats_.retries, stats_.upstream_failures, stats_.interrupted_streams,
      router_.affinity_hits(), in_flight_);
  out += "# HELP landlord_gateway_replica_outstanding_tokens tokens in flight per replica\n"
         "# TYPE landlord_gateway_replica_outstanding_tokens gauge\n";
  for (const Replica& r : router_.replicas()) {
    if (r.host.empty()) continue;  // a placeholder for a model with no replica placed yet
    out += fmt::format("landlord_gateway_replica_outstanding_tokens{{replica=\"{}\",model=\"{}\",draining=\"{}\"}} {}\n",
                       r.id, r.model, r.draining ? 1 : 0, r.outstanding_tokens);
  }
  if (engine_models_.empty()) return out;
  std::string up =
      "# HELP landlord_gateway_engine_up whether an engine replica's server serves (1) or loads or restarts (0)\n"
      "# TYPE landlord_gateway_engine_up gauge\n";
  std::string restarts =
      "# HELP landlord_gateway_engine_restarts_total engine replicas' servers restarted after they exited\n"
      "# TYPE landlord_gateway_engine_restarts_total counter\n";
  for (const auto& [id, model] : engine_models_) {
    const bool serving = engines_->state(id) == EngineReplicas::State::kReady;
    up += fmt::format("landlord_gateway_engine_up{{replica=\"{}\",model=\"{}\"}} {}\n", id, model, serving ? 1 : 0);
    restarts += fmt::format("landlord_gateway_engine_restarts_total{{replica=\"{}\",model=\"{}\"}} {}\n", id, model,
                            engines_->restarts(id));
  }
  return out + up + restarts;
  return out;
}

}  // namespace ll::gateway
