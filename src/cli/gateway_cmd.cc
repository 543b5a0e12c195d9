// `landlord gateway`: the model API alone (scale-out), against a control plane's ledger over
// HTTP, on every core (issue 20). It runs `--threads` event loops (default: one per core), each
// an io_context on a thread of its own with its own listener on the one port (SO_REUSEPORT: the
// kernel spreads new connections over the loops), its own gateway (router, upstream
// connections, counters) and its own ledger client. Nothing a request touches is shared
// between loops: each loop leases its own slices of the keys' balances and rate limits
// (docs/scale-out.md) and admits and settles against them alone. What loops share is read-only
// (the config, the prices, the clock) or taken off the request path (where the control plane
// is, asked by the ledger clients' workers under a lock). `GET /metrics` sums every loop's
// figures.
#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "api/config.h"
#include "api/http_metrics.h"
#include "api/http_server.h"
#include "api/ops_log.h"
#include "cli/http_client.h"
#include "cli/remote_accounts.h"
#include "cli/serve.h"
#include "cli/serve_internal.h"
#include "cli/slice_accounts.h"
#include "core/clock.h"
#include "gateway/gateway.h"
#include "store/store.h"

namespace ll::cli {
namespace {

using api::oplog::Level;
using api::oplog::Say;

struct GatewayArgs {
  std::string config;
  std::string listen;
  std::string control_plane;
  std::string store;
  int threads = -1;  // -1: the config's (`[gateway] threads`); 0: one per core
};

// The leader a shared store names (PublishLeader).
Result<Url> LeaderUrl(store::Store& store) {
  LL_ASSIGN_OR_RETURN(auto text, store.Setting("leader"));
  if (!text) return Status::NotFound("no control plane leads yet (none has started on this database)");
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("url") || !j["url"].is_string()) {
    return Status::Invalid("store: setting `leader` is corrupt");
  }
  return ParseUrl(j["url"].get<std::string>());
}

// The control plane must answer before the gateway takes traffic (a leader may still be
// starting: up to 30 s).
Status WaitForControlPlane(const RemoteAccounts::Locator& locate, const std::string& admin, const std::string& where) {
  for (int i = 0;; ++i) {
    auto url = locate();
    Status st = url.status();
    if (url.ok()) {
      HttpClient probe(*url, admin);
      st = probe.Request("GET", "/healthz", "", Duration::Seconds(5)).status();
    }
    if (st.ok()) return st;
    if (i == 0) {
      Say(Level::kWarn, "gateway.waiting",
          fmt::format("landlord gateway: waiting for the control plane ({}): {}", where, st.message()));
    }
    if (i >= 60) return Status::Unavailable(fmt::format("the control plane ({}) does not answer: {}", where, st.message()));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// One event loop: everything its requests touch.
struct Loop {
  boost::asio::io_context ioc{1};
  std::unique_ptr<RemoteAccounts> accounts;
  std::unique_ptr<SliceAccounts> sliced;  // admits locally, usage in batches (docs/scale-out.md)
  std::unique_ptr<gateway::Gateway> gw;
  std::unique_ptr<api::HttpServer> server;
  boost::asio::steady_timer wait{ioc};
  std::thread thread;
};

// On the loop's thread: stops accepting, lets in-flight requests finish, and ends the loop as
// soon as no connection is left or at `until`.
void StopWhenIdle(Loop& loop, std::chrono::steady_clock::time_point until) {
  loop.server->Shutdown();
  if (loop.server->connections() == 0 || std::chrono::steady_clock::now() >= until) {
    loop.ioc.stop();
    return;
  }
  loop.wait.expires_after(std::chrono::milliseconds(10));
  loop.wait.async_wait([&loop, until](const boost::system::error_code& ec) {
    if (!ec) StopWhenIdle(loop, until);
  });
}

// `GET /metrics` on `asker`: every loop renders its own figures on its own thread; the sum goes
// back to `asker`'s thread.
void GatherMetrics(const std::vector<std::unique_ptr<Loop>>& loops, Loop& asker, std::function<void(std::string)> done) {
  struct Pending {
    std::mutex mu;
    std::vector<std::string> texts;
    size_t left = 0;
    std::function<void(std::string)> done;
  };
  auto p = std::make_shared<Pending>();
  p->texts.resize(loops.size());
  p->left = loops.size();
  p->done = std::move(done);
  for (size_t i = 0; i < loops.size(); ++i) {
    Loop* loop = loops[i].get();
    boost::asio::post(loop->ioc, [p, loop, i, &asker] {
      std::string text = loop->server->MetricsText();
      std::lock_guard<std::mutex> lock(p->mu);
      p->texts[i] = std::move(text);
      if (--p->left > 0) return;
      boost::asio::post(asker.ioc, [p] { p->done(api::SumMetricsTexts(p->texts)); });
    });
  }
}

// Makes `n` loops listening on `listen` (the first one picks the port when it is 0, the others
// join it). `locate` may be called from any loop's ledger workers.
Status StartLoops(int n, const api::ServeConfig& config, const RemoteAccounts::Locator& locate, const std::string& admin,
                  const Clock* wall, std::vector<std::unique_ptr<Loop>>* loops) {
  api::ServeConfig c = config;
  // The ledger clients' HTTP workers: about 16 in all, at least 4 per loop.
  const int workers = std::max(4, 16 / n);
  for (int i = 0; i < n; ++i) {
    auto loop = std::make_unique<Loop>();
    loop->accounts = std::make_unique<RemoteAccounts>(loop->ioc, locate, admin, wall, workers);
    gateway::Accounts* ledger = loop->accounts.get();
    if (c.gateway.slices.enabled) {
      loop->sliced = std::make_unique<SliceAccounts>(loop->ioc, *loop->accounts, c.prices, wall, c.gateway.slices,
                                                     c.meter_flush);
      ledger = loop->sliced.get();
    }
    LL_ASSIGN_OR_RETURN(loop->gw, gateway::Gateway::Create(loop->ioc, c.gateway, c.prices, ledger, wall));
    LL_ASSIGN_OR_RETURN(loop->server, api::HttpServer::StartGateway(loop->ioc, c, *loop->gw, /*reuse_port=*/n > 1));
    c.listen = loop->server->address();  // the port the first one bound
    loops->push_back(std::move(loop));
  }
  if (n == 1) return Status::Ok();
  for (auto& loop : *loops) {
    loop->server->SetMetricsGather([loops, l = loop.get()](std::function<void(std::string)> done) {
      GatherMetrics(*loops, *l, std::move(done));
    });
  }
  return Status::Ok();
}

// At shutdown the loop's slices go back, their last usage with them (until `until`). The
// loop's thread has ended: its io_context runs here.
void ReturnSlices(Loop& loop, std::chrono::steady_clock::time_point until) {
  if (!loop.sliced) return;
  loop.sliced->CloseAll();
  loop.ioc.restart();
  while (!loop.sliced->closed() && std::chrono::steady_clock::now() < until) {
    loop.ioc.run_for(std::chrono::milliseconds(10));
  }
}

void FinishLoops(std::vector<std::unique_ptr<Loop>>& loops);

// A standalone gateway (scale-out): the model API against a control plane's ledger over HTTP.
int RunGateway(const GatewayArgs& a) {
  auto fail = [](const std::string& m) {
    Say(Level::kError, "gateway.error", fmt::format("landlord gateway: {}", m));
    return 2;
  };
  api::ServeConfig config;
  if (!a.config.empty()) {
    Status st = api::LoadServeConfig(a.config, &config);
    if (!st.ok()) return fail(st.message());
  }
  if (!a.listen.empty()) config.listen = a.listen;
  if (a.threads >= 0) config.gateway_threads = a.threads;
  const int threads = config.gateway_threads > 0 ? static_cast<int>(config.gateway_threads)
                                                 : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (a.control_plane.empty() == a.store.empty()) return fail("give one of --control-plane URL and --store postgresql://…");
  const char* admin = std::getenv("LANDLORD_ADMIN_KEY");
  if (admin == nullptr || *admin == 0) return fail("LANDLORD_ADMIN_KEY must hold the control plane's admin key");
  // Where the control plane is: a fixed URL, or whichever server leads on the shared store.
  std::unique_ptr<store::Store> shared;
  RemoteAccounts::Locator locate;
  std::string where = a.control_plane;
  if (!a.store.empty()) {
    if (!store::IsPostgresUrl(a.store)) return fail("--store must be a postgresql:// URL");
    auto st = store::OpenPostgresStore(a.store);
    if (!st.ok()) return fail(st.status().message());
    shared = std::move(*st);
    // Every loop's ledger workers ask; the store's one connection answers one at a time.
    locate = [s = shared.get(), mu = std::make_shared<std::mutex>()] {
      std::lock_guard<std::mutex> lock(*mu);
      return LeaderUrl(*s);
    };
    api::ServeConfig named;
    named.store = a.store;
    where = "the leader on " + StoreName(named);
  } else {
    auto url = ParseUrl(a.control_plane);
    if (!url.ok()) return fail(fmt::format("--control-plane: {}", url.status().message()));
    locate = [u = *url]() -> Result<Url> { return u; };
  }
  // No fleet here: simulated replicas run beside it (each loop has its own).
  for (auto& m : config.gateway.sim_models) m.gpus_per_replica = 0;
  if (Status st = WaitForControlPlane(locate, admin, where); !st.ok()) return fail(st.message());
  std::unique_ptr<Clock> wall = NewSystemClock();
  std::vector<std::unique_ptr<Loop>> loops;
  if (Status st = StartLoops(threads, config, locate, admin, wall.get(), &loops); !st.ok()) return fail(st.message());
  Loop& first = *loops.front();
  boost::asio::signal_set signals(first.ioc, SIGTERM, SIGINT);
  fmt::print("landlord gateway: listening on http://{}\n", first.server->address());
  std::vector<std::string> slicers;  // each loop leases its slices as a gateway of its own
  for (const auto& loop : loops) {
    if (loop->sliced) slicers.push_back(loop->sliced->gateway_id());
  }
  fmt::print("control plane: {}; models: {}; {} event loop{}; slices: {}\n", where,
             fmt::join(first.gw->router().Models(), ", "), threads, threads == 1 ? "" : "s",
             slicers.empty() ? std::string("off") : fmt::format("gateway {}", fmt::join(slicers, ", ")));
  std::fflush(stdout);
  signals.async_wait([&loops](const boost::system::error_code& ec, int) {
    if (ec) return;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (auto& loop : loops) {
      boost::asio::post(loop->ioc, [l = loop.get(), until] { StopWhenIdle(*l, until); });
    }
  });
  for (size_t i = 1; i < loops.size(); ++i) loops[i]->thread = std::thread([l = loops[i].get()] { l->ioc.run(); });
  first.ioc.run();
  signals.cancel();
  for (auto& loop : loops) {
    if (loop->thread.joinable()) loop->thread.join();
  }
  FinishLoops(loops);
  return 0;
}

// Every loop has stopped: what is left of each runs here, one loop after the other.
void FinishLoops(std::vector<std::unique_ptr<Loop>>& loops) {
  for (auto& loop : loops) {
    loop->wait.cancel();
    loop->server->Shutdown();
    loop->gw->Shutdown();
    loop->server->CloseAll();
    Drain(loop->ioc);
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (auto& loop : loops) ReturnSlices(*loop, until);
  for (auto& loop : loops) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    loop->accounts->Stop(Duration::Millis(std::max<int64_t>(0, left.count())));  // settlements in flight reach the ledger
    Drain(loop->ioc);  // the answers the ledger's threads posted, while the gateway still lives
  }
}

}  // namespace

std::function<std::optional<int>()> AddGatewayCommand(CLI::App& app) {
  auto ga = std::make_shared<GatewayArgs>();
  CLI::App* gwc = app.add_subcommand(
      "gateway", "Run the model API alone (scale-out), against a control plane's ledger (LANDLORD_ADMIN_KEY)");
  gwc->add_option("--control-plane", ga->control_plane, "The control plane's URL, e.g. http://127.0.0.1:8080");
  gwc->add_option("--store", ga->store,
                  "The control planes' shared PostgreSQL database (postgresql://…): follow whichever one leads");
  gwc->add_option("--config", ga->config, "TOML file: [server], [gateway] and [prices] as for `serve`");
  gwc->add_option("--listen", ga->listen, "HOST:PORT (port 0: any free port); default 127.0.0.1:8080");
  gwc->add_option("--threads", ga->threads,
                  "Event loops, each on a thread of its own sharing the port (0: one per core; default "
                  "`[gateway] threads`, else 0)")
      ->check(CLI::Range(0, 1024));
  return [gwc, ga]() -> std::optional<int> {
    if (!gwc->parsed()) return std::nullopt;
    return RunGateway(*ga);
  };
}

}  // namespace ll::cli
