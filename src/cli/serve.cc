#include "cli/serve.h"
#include "cli/serve_internal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "api/config.h"
#include "api/control_plane.h"
#include "api/gateway_accounts.h"
#include "api/http_server.h"
#include "api/ops_log.h"
#include "core/build_info.h"
#include "cli/http_client.h"
#include "control/workloads.h"
#include "core/clock.h"
#include "fleet/slurm/slurm_backend.h"
#include "fleet/slurm/slurm_workload.h"
#include "gateway/fake_model.h"
#include "gateway/gateway.h"
#include "sim/trace.h"
#include "store/commit_thread.h"
#include "store/store.h"

namespace ll::cli {
namespace {

using api::oplog::Level;
using api::oplog::Say;

struct ServeArgs {
  std::string config;
  std::string listen;
  std::string data_dir;
  std::string store;
  std::string advertise;
  double speed = 0;
};

// Set by SIGTERM/SIGINT while a standby waits (before the io_context's own handlers exist).
volatile std::sig_atomic_t g_stop_standby = 0;

// Opens the store `config` names: SQLite in the data dir, or a shared PostgreSQL database.
Result<std::unique_ptr<store::Store>> OpenStore(const api::ServeConfig& config) {
  if (!config.store.empty()) return store::OpenPostgresStore(config.store);
  return store::OpenSqliteStore(config.data_dir + "/landlord.db");
}

// A standby: waits until this server holds the store's leadership (false: stopped by a signal
// first). Says once on stderr that it stands by, and when it takes over.
bool WaitToLead(store::Store& store, const std::string& name, std::string* error) {
  auto on_signal = [](int) { g_stop_standby = 1; };
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  bool said = false;
  for (;;) {
    auto lead = store.TryLead();
    if (!lead.ok()) {
      *error = lead.status().message();
      return false;
    }
    if (*lead) break;
    if (!said) {
      Say(Level::kInfo, "leader.standby",
          fmt::format("landlord serve: standby: another server leads on {}; taking over when it stops", name));
      said = true;
    }
    if (g_stop_standby) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (g_stop_standby) return false;
  }
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGINT, SIG_DFL);
  if (said) Say(Level::kInfo, "leader.acquired", "landlord serve: leading now: rebuilding from the store");
  api::oplog::Write(Level::kInfo, "leader.leading", {{"store", name}, {"after_standby", said ? "true" : "false"}});
  return true;
}

// The Slurm fleet's workloads: steps of the leases' holder jobs (fleet/slurm/slurm_workload.h),
// the metadata service at the URL the nodes reach this server by.
Result<std::unique_ptr<control::Workloads>> OpenSlurmWorkloads(const api::ServeConfig& config, api::ControlPlane& cp,
                                                               boost::asio::io_context& ioc,
                                                               fleet::SlurmBackend& slurm) {
  const api::WorkloadConfig& w = config.workloads;
  LL_RETURN_IF_ERROR(fleet::CheckContainerTemplate(config.slurm.container));
  LL_RETURN_IF_ERROR(fleet::CheckContainerKill(config.slurm.container_kill, config.slurm.container));
  fleet::SlurmWorkloadOptions so{.container = config.slurm.container,
                                 .container_kill = config.slurm.container_kill,
                                 .notice_root = "/tmp",
                                 .log_bytes = static_cast<size_t>(w.log_bytes),
                                 .sigterm_on_notice = w.sigterm_on_notice,
                                 .poll = Duration::Millis(250)};
  control::WorkloadsOptions o;
  o.stop_grace = w.stop_grace;
  o.keep_ended = static_cast<size_t>(w.keep_ended);
  o.metadata_base = slurm.options().notify_url + "/metadata/";
  const Clock& clock = cp.clock();
  fleet::SlurmBackend* backend = &slurm;
  o.runner = [&ioc, &clock, so, backend](const workload::LeaseContext& lease, const workload::Spec& spec,
                                          workload::Runner::Listener listener) {
    const std::string id = lease.lease_id;
    return std::make_unique<fleet::SlurmWorkload>(
        ioc, clock, so, lease, spec, [backend, id] { return backend->RunningJob(id); }, std::move(listener));
  };
  o.accepts = [so](const workload::Spec& spec, workload::SpecError* why) { return fleet::AcceptsOnSlurm(so, spec, why); };
  auto workloads = std::make_unique<control::Workloads>(ioc, cp.clock(), std::move(o));
  cp.UseWorkloads(workloads.get());
  return workloads;
}

// The fleet's workloads (none when `[workloads] enabled = false`): on the sim fleet sandboxes on
// this machine, their leftovers of a previous run swept, the metadata service on this server's
// port; on Slurm, steps of the holder jobs.
Result<std::unique_ptr<control::Workloads>> OpenWorkloads(const api::ServeConfig& config, api::ControlPlane& cp,
                                                          boost::asio::io_context& ioc, const std::string& address,
                                                          fleet::SlurmBackend* slurm) {
  const api::WorkloadConfig& w = config.workloads;
  if (!w.enabled) return std::unique_ptr<control::Workloads>();
  if (slurm != nullptr) return OpenSlurmWorkloads(config, cp, ioc, *slurm);
  if (config.backend != "sim") return std::unique_ptr<control::Workloads>();
  control::WorkloadsOptions o;
  const std::string data_dir = std::filesystem::absolute(config.data_dir).lexically_normal().string();
  const std::string tag = fmt::format("{:08x}", static_cast<uint32_t>(std::hash<std::string>()(data_dir)));
  o.sandbox.runtime_root = w.runtime_root.empty() ? "/tmp/landlord-workloads-" + tag : w.runtime_root;
  o.sandbox.cgroup_parent = "landlord-" + tag;
  o.sandbox.limits.memory_bytes = w.memory_mb << 20;
  o.sandbox.limits.max_processes = w.max_processes;
  o.sandbox.log_bytes = static_cast<size_t>(w.log_bytes);
  o.sandbox.sigterm_on_notice = w.sigterm_on_notice;
  o.stop_grace = w.stop_grace;
  o.keep_ended = static_cast<size_t>(w.keep_ended);
  o.metadata_base = fmt::format("http://127.0.0.1:{}/metadata/", address.substr(address.rfind(':') + 1));
  if (geteuid() == 0) o.uid_base = 200'000;
  std::error_code ec;
  std::filesystem::create_directories(o.sandbox.runtime_root, ec);
  if (ec) return Status::Io(fmt::format("workloads: cannot make `{}`: {}", o.sandbox.runtime_root.string(), ec.message()));
  // Traversable (not listable) by the sandboxes' own uids.
  chmod(o.sandbox.runtime_root.c_str(), 0711);
  if (Status st = workload::SweepLeftovers(o.sandbox); !st.ok()) {
    Say(Level::kWarn, "workloads.sweep_failed", fmt::format("landlord serve: workloads: sweeping leftovers: {}", st.message()));
  }
  auto workloads = std::make_unique<control::Workloads>(ioc, cp.clock(), std::move(o));
  cp.UseWorkloads(workloads.get());
  return workloads;
}

// The leader's URL in the shared store: standalone gateways (`--store`) read it.
Status PublishLeader(store::Store& store, const std::string& url, const Clock& wall) {
  store::Batch b;
  nlohmann::json j = {{"url", url}, {"pid", static_cast<int64_t>(getpid())}, {"since", FormatUtc(wall.Now())}};
  b.settings.emplace_back("leader", j.dump());
  return store.Commit(b);
}

int Fail(const std::string& message) {
  Say(Level::kError, "serve.error", fmt::format("landlord serve: {}", message));
  return 2;
}

// The exit status of a server that found its data dir held by another one (2 is any other
// startup error, 3 a lost leadership).
constexpr int kExitDataDirLocked = 4;

// Creates the data dir if needed and holds an exclusive lock on `DIR/lock` for the life of the
// process (the kernel drops it with the process, kill -9 included): two servers on one SQLite
// file would hand out the same ids and overwrite each other's balances. Returns the lock's fd;
// `*held` is set when another process holds it.
Result<int> LockDataDir(const std::string& dir, bool* held) {
  *held = false;
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Io(fmt::format("cannot create --data-dir `{}`: {}", dir, std::strerror(errno)));
  }
  const std::string path = dir + "/lock";
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Io(fmt::format("cannot open `{}`: {}", path, std::strerror(errno)));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char pid[32] = {};
    const ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    close(fd);
    if (err != EWOULDBLOCK) return Status::Io(fmt::format("cannot lock `{}`: {}", path, std::strerror(err)));
    *held = true;
    std::string who(pid, n > 0 ? static_cast<size_t>(n) : 0);
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    return Status::Conflict(fmt::format(
        "the data dir `{}` is in use by another landlord serve{}: one server per data dir (stop it, or "
        "give this one its own --data-dir)",
        dir, who.empty() ? "" : " (pid " + who + ")"));
  }
  const std::string me = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    // The pid is only for the message of a second server; the lock is what counts.
  }
  return fd;
}

// Runs `ioc` until SIGTERM or SIGINT; then stops `server` accepting, calls `on_stop`, and ends
// the loop as soon as no connection is left (in-flight requests finish), 5 s at most. `signals`
// is made before the first line is printed: a SIGTERM right after it still ends cleanly.
void RunUntilSignal(boost::asio::io_context& ioc, boost::asio::signal_set& signals, api::HttpServer& server,
                    const std::function<void()>& on_stop) {
  boost::asio::steady_timer deadline(ioc);
  std::function<void()> wait;
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    server.Shutdown();
    on_stop();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    wait = [&, until]() {
      if (server.connections() == 0 || std::chrono::steady_clock::now() >= until) {
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
  signals.cancel();
  deadline.cancel();
}

// The configuration `serve` runs with: the TOML file, then the flags over it.
Result<api::ServeConfig> ServeConfigOf(const ServeArgs& a) {
  api::ServeConfig config;
  if (!a.config.empty()) LL_RETURN_IF_ERROR(api::LoadServeConfig(a.config, &config));
  if (!a.listen.empty()) config.listen = a.listen;
  if (!a.data_dir.empty()) config.data_dir = a.data_dir;
  if (!a.store.empty()) {
    if (!store::IsPostgresUrl(a.store)) return Status::Invalid("--store must be a postgresql:// URL (SQLite is the default: use --data-dir)");
    config.store = a.store;
  }
  if (!a.advertise.empty()) {
    auto u = ParseUrl(a.advertise);
    if (!u.ok()) return Status::Invalid(fmt::format("--advertise: {}", u.status().message()));
    if (config.store.empty()) return Status::Invalid("--advertise goes with --store (it tells gateways where the leader is)");
  }
  if (a.speed > 0) config.speed = a.speed;
  return config;
}

// The sim fleet's trace (none on the Slurm fleet).
Result<std::optional<sim::Trace>> ReadSimTrace(const api::ServeConfig& config) {
  if (config.backend == "slurm") return std::optional<sim::Trace>();
  sim::ReadOptions ro;
  ro.fleet.nodes = config.nodes;
  ro.fleet.gpus_per_node = config.gpus_per_node;
  LL_ASSIGN_OR_RETURN(sim::Trace t, sim::ReadTrace(config.trace, ro));
  return std::optional<sim::Trace>(std::move(t));
}

// The fleet's trace: `sim_trace` (read before anything was created) on the sim fleet, or what
// the Slurm cluster reports, whose backend is opened into `*slurm`.
Result<sim::Trace> FleetTrace(api::ServeConfig& config, std::optional<sim::Trace> sim_trace, const Clock& wall,
                              std::unique_ptr<fleet::SlurmBackend>* slurm) {
  if (config.backend != "slurm") return std::move(*sim_trace);
  // A real cluster runs on real time, and places no simulated replicas.
  if (config.speed != 1) Say(Level::kWarn, "serve.config", "landlord serve: the slurm fleet runs at 1x (`clock.speed` ignored)");
  config.speed = 1;
  // Replicas on the fleet are Slurm jobs running their model's command (an engine's server from
  // [[gateway.engines]], else `slurm_model_command`); a model with neither runs beside the fleet.
  for (auto& m : config.gateway.sim_models) {
    if (config.slurm.model_command.empty() && !config.slurm.model_commands.contains(m.model)) m.gpus_per_replica = 0;
  }
  config.slurm.state_dir = config.data_dir + "/slurm";
  LL_ASSIGN_OR_RETURN(*slurm, fleet::SlurmBackend::Open(config.slurm));
  return fleet::SlurmTrace(**slurm, wall.Now(), config.history);
}

// The startup lines on stdout. The first is the address: scripts and tests read it
// (`--listen 127.0.0.1:0`).
void PrintStartup(const api::ServeConfig& config, const sim::Trace& trace, const std::string& address,
                  const std::string& admin_key, const fleet::SlurmBackend* slurm, const gateway::Gateway* gw) {
  fmt::print("landlord serve: listening on http://{}\n", address);
  if (!admin_key.empty()) {
    fmt::print("admin key (shown once; only its hash is stored): {}\n", admin_key);
  } else {
    fmt::print("admin key: the one created on first start (or LANDLORD_ADMIN_KEY)\n");
  }
  fmt::print("fleet: {} GPUs from {} at {}x; policy {}; store {}\n", trace.total_gpus(), trace.spec, config.speed,
             config.policy, StoreName(config));
  if (slurm) fmt::print("slurm: holders in partition `{}`; notices to {}\n", slurm->options().partition,
                        slurm->options().notify_url);
  fmt::print("dashboard: http://{}/ (log in with the admin key)\n", address);
  if (gw) {
    for (const std::string& m : gw->router().Models()) {
      int n = 0;
      for (const auto& r : gw->router().replicas()) n += r.model == m && !r.draining;
      fmt::print("model API: {} ({} replica{} serving) at http://{}/v1 (OpenAI-compatible; tenant keys)\n", m, n,
                 n == 1 ? "" : "s", address);
    }
  }
  fmt::print("try:   LANDLORD_URL=http://{} LANDLORD_API_KEY=<key> landlord admin tenant create acme\n", address);
  std::fflush(stdout);
  api::oplog::Write(Level::kInfo, "serve.started",
                    {{"listen", address}, {"version", std::string(BuildVersion())}, {"commit", std::string(BuildCommit())},
                     {"backend", config.backend}, {"policy", config.policy}, {"store", StoreName(config)},
                     {"admin_key_created", admin_key.empty() ? "false" : "true"}});
}

// Once a second: a leader that lost the database (and with it the lock) stops at once (a
// standby leads now, and the store's connection refuses this one's writes anyway); the fleet
// backend's errors and recoveries go to the log as its health changes.
class ServeWatch {
 public:
  ServeWatch(boost::asio::io_context& ioc, store::Store& store, bool shared_store, const fleet::Backend* fleet)
      : timer_(ioc), store_(store), shared_store_(shared_store), fleet_(fleet) {}

  void Start() {
    if (!shared_store_ && fleet_ == nullptr) return;
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (shared_store_) CheckLeadership();
      if (fleet_ != nullptr) LogFleetHealth();
      Start();
    });
  }
  void Cancel() { timer_.cancel(); }

 private:
  void CheckLeadership() {
    auto lead = store_.TryLead();
    if (!lead.ok() || !*lead) {
      const std::string why = lead.ok() ? "another server holds it" : lead.status().message();
      Say(Level::kError, "leader.lost", fmt::format("landlord serve: lost the store's leadership ({}): stopping", why));
      std::fflush(stderr);
      std::_Exit(3);
    }
  }
  void LogFleetHealth() {
    std::optional<fleet::Health> h = fleet_->health();
    if (!h) return;
    if (h->available != available_) {
      api::oplog::Write(h->available ? Level::kInfo : Level::kError, h->available ? "fleet.recovered" : "fleet.error",
                        {{"backend", h->backend}, {"partition", h->partition}, {"message", h->message}});
      available_ = h->available;
    }
    for (const auto& [node, why] : h->drained) {
      if (!drained_.contains(node)) api::oplog::Write(Level::kWarn, "fleet.node_drained", {{"node", node}, {"reason", why}});
    }
    for (const auto& [node, why] : drained_) {
      if (!h->drained.contains(node)) api::oplog::Write(Level::kInfo, "fleet.node_resumed", {{"node", node}});
    }
    drained_ = std::move(h->drained);
  }

  boost::asio::steady_timer timer_;
  store::Store& store_;
  const bool shared_store_;
  const fleet::Backend* fleet_;
  bool available_ = true;
  std::map<std::string, std::string> drained_;
};

// After the loop: everything still pending ends now (aborted), while the objects it refers to
// live; the last usage is committed and the workloads end.
void StopServing(boost::asio::io_context& ioc, api::HttpServer& server, gateway::Gateway* gw,
                 api::GatewayAccounts& accounts, api::ControlPlane& cp, std::unique_ptr<control::Workloads>& workloads) {
  server.Shutdown();
  if (gw) gw->Shutdown();
  server.CloseAll();
  Drain(ioc);
  accounts.FlushNow();  // metered usage in the group-commit window, aborted calls' included
  Drain(ioc);           // the answers that waited for it (to closed connections by now)
  // The workloads die with the server (a restart records them as killed); before the loop.
  cp.UseWorkloads(nullptr);
  workloads.reset();
  Drain(ioc);
  cp.FlushPending();  // nothing left on the commit thread that refers to the control plane
}

int RunServe(const ServeArgs& a) {
  auto loaded = ServeConfigOf(a);
  if (!loaded.ok()) return Fail(loaded.status().message());
  api::ServeConfig config = std::move(*loaded);
  // Everything is validated before anything is created: a bad trace leaves no data dir behind.
  auto sim_trace = ReadSimTrace(config);
  if (!sim_trace.ok()) return Fail(sim_trace.status().message());
  bool locked_out = false;
  auto lock = LockDataDir(config.data_dir, &locked_out);
  if (!lock.ok()) {
    Fail(lock.status().message());
    return locked_out ? kExitDataDirLocked : 2;
  }
  std::unique_ptr<Clock> wall = NewSystemClock();
  std::unique_ptr<fleet::SlurmBackend> slurm;
  Result<sim::Trace> trace = FleetTrace(config, std::move(*sim_trace), *wall, &slurm);
  if (!trace.ok()) return Fail(trace.status().message());
  auto store = OpenStore(config);
  if (!store.ok()) return Fail(store.status().message());
  // One active control plane per database: the others stand by until it stops (its connection,
  // and with it the lock, goes with its process), then rebuild everything from the store.
  {
    std::string error;
    if (!WaitToLead(**store, StoreName(config), &error)) {
      if (!error.empty()) return Fail(error);
      return 0;  // stopped while standing by
    }
  }
  // Commits run on a thread of their own: the event loop hands the metered usage over and
  // serves on while it syncs (issue 20). Everything else reaches the store through the commit
  // thread's store, whose calls are serialized with the commits and ordered after them.
  store::CommitThread commits(**store);
  store::Store& serialized = commits.store();
  const char* env_key = std::getenv("LANDLORD_ADMIN_KEY");
  auto cp = api::ControlPlane::Open(config, *trace, &serialized, wall.get(), env_key != nullptr ? env_key : "");
  if (!cp.ok()) return Fail(cp.status().message());

  boost::asio::io_context ioc(1);
  (*cp)->UseCommitThread(&commits, [&ioc](std::function<void()> f) { boost::asio::post(ioc, std::move(f)); });
  boost::asio::signal_set signals(ioc, SIGTERM, SIGINT);
  api::GatewayAccounts accounts(**cp, ioc, config.meter_flush);
  std::unique_ptr<gateway::Gateway> gw;
  if (config.gateway_enabled) {
    auto g = gateway::Gateway::Create(ioc, config.gateway, config.prices, &accounts, wall.get());
    if (!g.ok()) return Fail(g.status().message());
    gw = std::move(*g);
  }
  auto server = api::HttpServer::Start(ioc, **cp, config, gw.get());
  if (!server.ok()) return Fail(server.status().message());
  if (slurm) {
    if (slurm->options().notify_url.empty()) slurm->set_notify_url("http://" + (*server)->address());
    (*cp)->UseBackend(slurm.get());
  }
  // Replicas on the fleet's GPUs (after the fleet backend: on Slurm they are jobs).
  if (gw) (*cp)->SetReplicaHost(gw.get(), config.gateway.sim_models);
  auto workloads = OpenWorkloads(config, **cp, ioc, (*server)->address(), slurm.get());
  if (!workloads.ok()) return Fail(workloads.status().message());
  PrintStartup(config, *trace, (*server)->address(), (*cp)->admin_key_once(), slurm.get(), gw.get());
  if (!config.store.empty()) {
    // What gateways on other machines reach: --advertise, else the address bound (fine on one
    // host; a wildcard address such as 0.0.0.0 is only reachable there).
    Status st = PublishLeader(serialized, a.advertise.empty() ? "http://" + (*server)->address() : a.advertise, *wall);
    if (!st.ok()) return Fail(st.message());
  }
  ServeWatch watch(ioc, serialized, !config.store.empty(), slurm.get());
  watch.Start();

  RunUntilSignal(ioc, signals, **server, [&] {
    watch.Cancel();
    Say(Level::kInfo, "serve.stopping", "landlord serve: stopping (in-flight requests finish)");
    (*cp)->Advance();
    accounts.Flush();
  });
  StopServing(ioc, **server, gw.get(), accounts, **cp, *workloads);
  return 0;
}

int RunFakeModel(const gateway::FakeModelOptions& o) {
  boost::asio::io_context ioc(1);
  auto fake = gateway::FakeModel::Start(ioc, o);
  if (!fake.ok()) {
    fmt::print(stderr, "landlord fake-model: {}\n", fake.status().message());
    return 2;
  }
  boost::asio::signal_set signals(ioc, SIGTERM, SIGINT);  // before the first line (a SIGTERM may follow it)
  fmt::print("landlord fake-model: listening on http://{}\n", (*fake)->address());
  fmt::print("model {} at {} tokens/s (simulated: no weights, filler text)\n", o.model, o.tokens_per_s);
  std::fflush(stdout);
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
  cmd->add_option("--store", args->store,
                  "A PostgreSQL database shared with other servers (postgresql://…) instead of SQLite: one leads, "
                  "the others stand by");
  cmd->add_option("--advertise", args->advertise,
                  "With --store: the URL gateways reach this server at once it leads, e.g. http://10.0.0.1:8080 "
                  "(default: http:// and the address it listens on)");
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
  auto run_gateway = AddGatewayCommand(app);
  return [cmd, args, fake, fo, first_ms, run_gateway]() -> std::optional<int> {
    if (auto code = run_gateway()) return code;
    if (fake->parsed()) {
      fo->first_token = Duration::Millis(*first_ms);
      return RunFakeModel(*fo);
    }
    if (!cmd->parsed()) return std::nullopt;
    return RunServe(*args);
  };
}

}  // namespace ll::cli
