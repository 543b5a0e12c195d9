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
#include "api/http_server.h"
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
  auto server = api::HttpServer::Start(ioc, **cp, config);
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
  fmt::print("try:   LANDLORD_URL=http://{} LANDLORD_API_KEY=<key> landlord admin tenant create acme\n",
             (*server)->address());
  std::fflush(stdout);

  boost::asio::signal_set signals(ioc, SIGTERM, SIGINT);
  boost::asio::steady_timer deadline(ioc);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    fmt::print(stderr, "landlord serve: stopping (in-flight requests finish)\n");
    (*server)->Shutdown();
    (*cp)->Advance();
    // In-flight requests get a few seconds; then the loop stops regardless.
    deadline.expires_after(std::chrono::seconds(5));
    deadline.async_wait([&](const boost::system::error_code& e) {
      if (!e) ioc.stop();
    });
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
  return [cmd, args]() -> std::optional<int> {
    if (!cmd->parsed()) return std::nullopt;
    return RunServe(*args);
  };
}

}  // namespace ll::cli
