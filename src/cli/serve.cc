#include "cli/serve.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include "api/config.h"
#include "api/control_plane.h"
#include "api/gateway_accounts.h"
#include "api/http_server.h"
#include "gateway/fake_model.h"
#include "gateway/gateway.h"
#include "core/clock.h"
#include "sim/trace.h"
#include "store/store.h"

namespace ll::cli {
namespace {

struct ServeArgs {
  std::string config;
  std::string listen;
  std::string data_dir;
  double speed = 0;
};

int Fail(const std::string& message) {
  fmt::print(stderr, "landlord serve: {}\n", message);
  return 2;
}

int RunServe(const ServeArgs& a) {
  api::ServeConfig config;
  if (!a.config.empty()) {
    Status st = api::LoadServeConfig(a.config, &config);
    if (!st.ok()) return Fail(st.message());
  }
  if (!a.listen.empty()) config.listen = a.listen;
  if (!a.data_dir.empty()) config.data_dir = a.data_dir;
  if (a.speed > 0) config.speed = a.speed;
  if (mkdir(config.data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Fail(fmt::format("cannot create --data-dir `{}`: {}", config.data_dir, std::strerror(errno)));
  }
  sim::ReadOptions ro;
  ro.fleet.nodes = config.nodes;
  ro.fleet.gpus_per_node = config.gpus_per_node;
  auto trace = sim::ReadTrace(config.trace, ro);
  if (!trace.ok()) return Fail(trace.status().message());
  auto store = store::OpenSqliteStore(config.data_dir + "/landlord.db");
  if (!store.ok()) return Fail(store.status().message());
  std::unique_ptr<Clock> wall = NewSystemClock();
  const char* env_key = std::getenv("LANDLORD_ADMIN_KEY");
  auto cp = api::ControlPlane::Open(config, *trace, store->get(), wall.get(), env_key != nullptr ? env_key : "");
  if (!cp.ok()) return Fail(cp.status().message());

  boost::asio::io_context ioc(1);
  api::GatewayAccounts accounts(**cp, ioc, config.meter_flush);
  std::unique_ptr<gateway::Gateway> gw;
  if (config.gateway_enabled) {
    auto g = gateway::Gateway::Create(ioc, config.gateway, config.prices, &accounts, wall.get());
    if (!g.ok()) return Fail(g.status().message());
    gw = std::move(*g);
    (*cp)->SetReplicaHost(gw.get(), config.gateway.sim_models);  // replicas on the fleet's GPUs
  }
  auto server = api::HttpServer::Start(ioc, **cp, config, gw.get());
  if (!server.ok()) return Fail(server.status().message());
  // The first line is the address: scripts and tests read it (`--listen 127.0.0.1:0`).
  fmt::print("landlord serve: listening on http://{}\n", (*server)->address());
  const std::string& key = (*cp)->admin_key_once();
  if (!key.empty()) {
    fmt::print("admin key (shown once; only its hash is stored): {}\n", key);
  } else {
    fmt::print("admin key: the one created on first start (or LANDLORD_ADMIN_KEY)\n");
  }
  fmt::print("fleet: {} GPUs from {} at {}x; policy {}; store {}/landlord.db\n", trace->total_gpus(), trace->spec,
             config.speed, config.policy, config.data_dir);
  if (gw) {
    for (const std::string& m : gw->router().Models()) {
      int n = 0;
      for (const auto& r : gw->router().replicas()) n += r.model == m && !r.draining;
      fmt::print("model API: {} ({} replica{} serving) at http://{}/v1 (OpenAI-compatible; tenant keys)\n", m, n,
                 n == 1 ? "" : "s", (*server)->address());
    }
  }
  fmt::print("try:   LANDLORD_URL=http://{} LANDLORD_API_KEY=<key> landlord admin tenant create acme\n",
             (*server)->address());
  std::fflush(stdout);

  boost::asio::signal_set signals(ioc, SIGTERM, SIGINT);
  boost::asio::steady_timer deadline(ioc);
  std::function<void()> wait;  // stops the loop once no connection is left (or time is up)
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    fmt::print(stderr, "landlord serve: stopping (in-flight requests finish)\n");
    (*server)->Shutdown();
    (*cp)->Advance();
    accounts.Flush();
    // In-flight requests get up to 5 s; the loop stops as soon as none is left.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    wait = [&, until]() {
      if ((*server)->connections() == 0 || std::chrono::steady_clock::now() >= until) {
        ioc.stop();
        return;
      }
      deadline.expires_after(std::chrono::milliseconds(10));
      deadline.async_wait([&](const boost::system::error_code& e) {
        if (!e) wait();
      });
    };
    wait();
  });
  ioc.run();
  // Everything still pending ends now (aborted), while the objects it refers to live.
  (*server)->Shutdown();
  if (gw) gw->Shutdown();
  accounts.Flush();  // metered usage still in the group-commit window
  signals.cancel();
  deadline.cancel();
  ioc.restart();
  for (int i = 0; i < 100 && ioc.poll() > 0; ++i) {
  }
  return 0;
}

int RunFakeModel(const gateway::FakeModelOptions& o) {
  boost::asio::io_context ioc(1);
  auto fake = gateway::FakeModel::Start(ioc, o);
  if (!fake.ok()) {
    fmt::print(stderr, "landlord fake-model: {}\n", fake.status().message());
    return 2;
  }
  fmt::print("landlord fake-model: listening on http://{}\n", (*fake)->address());
  fmt::print("model {} at {} tokens/s (simulated: no weights, filler text)\n", o.model, o.tokens_per_s);
  std::fflush(stdout);
  boost::asio::signal_set signals(ioc, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) ioc.stop();
  });
  ioc.run();
  return 0;
}

}  // namespace

std::function<std::optional<int>()> AddServeCommand(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Run the control plane: the lease API, on the sim fleet");
  cmd->add_option("--config", args->config, "TOML file (see docs/serve.example.toml)");
  cmd->add_option("--listen", args->listen, "HOST:PORT to listen on (port 0: any free port); default 127.0.0.1:8080");
  cmd->add_option("--data-dir", args->data_dir, "Directory of the SQLite store; default landlord-data");
  cmd->add_option("--speed", args->speed, "Server-clock seconds per wall second for the sim fleet; default 60")
      ->check(CLI::Range(0.001, 1e7));
  auto fo = std::make_shared<gateway::FakeModelOptions>();
  auto first_ms = std::make_shared<int64_t>(0);
  CLI::App* fake = app.add_subcommand(
      "fake-model", "Run a simulated OpenAI-compatible model server (fixture upstream for tests and benchmarks)");
  fake->add_option("--listen", fo->listen, "HOST:PORT (port 0: any free port)")->capture_default_str();
  fake->add_option("--model", fo->model, "Model name it serves")->capture_default_str();
  fake->add_option("--name", fo->name, "Replica name, sent back as `x-replica`")->capture_default_str();
  fake->add_option("--tokens-per-s", fo->tokens_per_s, "Generation speed per request (0: all at once)")
      ->check(CLI::Range(0.0, 1e7))
      ->capture_default_str();
  fake->add_option("--first-token-ms", *first_ms, "Time to the first token")->check(CLI::Range(0, 3'600'000));
  fake->add_option("--output-tokens", fo->default_output_tokens, "Tokens when the request sets no max_tokens")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  fake->add_flag("--crash-before-first-byte", fo->crash_before_first_byte,
                 "Exit on a completion request after reading it (fault tests)");
  fake->add_option("--crash-after-tokens", fo->crash_after_tokens, "Exit after streaming N tokens (fault tests)")
      ->check(CLI::Range(0, 1'000'000));
  return [cmd, args, fake, fo, first_ms]() -> std::optional<int> {
    if (fake->parsed()) {
      fo->first_token = Duration::Millis(*first_ms);
      return RunFakeModel(*fo);
    }
    if (!cmd->parsed()) return std::nullopt;
    return RunServe(*args);
  };
}

}  // namespace ll::cli
