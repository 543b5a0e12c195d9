// Engine replicas: real model-server processes (llama.cpp's `llama-server`) that the gateway
// starts for replicas the fleet placed, instead of in-process simulated ones (fake_model.h).
//
// A replica's server is spawned on a loopback port picked free a moment before (llama-server
// takes `--port 0` but names its port only after loading the model, and /health is what tells
// loading from ready). Its health is polled with GET /health on the caller's io_context: 503
// while the model loads, 200 once it serves; `ready` is called on the first 200, and the caller
// routes to the replica from then on. A server that exits before it was ever ready (a bad
// model, a lost race for the port) is respawned at once on another port up to `max_spawns`
// times, then reported through `failed` and forgotten: restarting it would not help.
//
// Supervision: a server that exits after it was ready (killed, crashed, out of memory) is
// reported through `down` (the caller routes around it) and restarted after a backoff that
// doubles with each crash in a row (`restart_backoff` up to `max_restart_backoff`; the streak
// ends once a server has served for `restart_reset`), like Kubernetes' CrashLoopBackOff. Its
// new server goes through loading again and `ready` is called again, with its new port; one
// that does not come back is restarted again, for as long as the replica is not stopped.
// `restarts` counts them. Stop sends SIGTERM and, after `stop_grace`, SIGKILL; processes are
// reaped without blocking.
//
// Single-threaded: everything runs on the io_context given. The callbacks are not called after
// the EngineReplicas is destroyed (which kills what is left).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/status.h"
#include "core/time.h"
#include "gateway/options.h"

namespace ll::gateway {

// Errors name the field: an unknown engine, a server or model that is not there.
Status ValidateEngineConfig(const EngineConfig& c);

// The command line of a replica's server listening on `host`:`port`.
std::vector<std::string> EngineCommand(const EngineConfig& c, const std::string& host, const std::string& port);
// The same as one shell command line (each word quoted for `bash -c`), for a replica started
// elsewhere: the Slurm backend's model command, with `host` and `port` its `{addr}` and `{port}`.
std::string EngineShellCommand(const EngineConfig& c, const std::string& host, const std::string& port);

struct EngineReplicasOptions {
  Duration poll = Duration::Millis(100);       // between /health probes while loading, and exit checks
  Duration probe_timeout = Duration::Seconds(2);
  Duration ready_timeout = Duration::Seconds(300);  // loading longer than this: killed, failed
  Duration stop_grace = Duration::Seconds(10);  // SIGTERM to SIGKILL
  int max_spawns = 3;                           // tries to start a server that exits before ready
  Duration restart_backoff = Duration::Seconds(1);       // the first restart after a crash ...
  Duration max_restart_backoff = Duration::Seconds(30);  // ... doubling up to this
  Duration restart_reset = Duration::Seconds(60);  // served this long: the next crash backs off from the start
};

class EngineReplicas {
 public:
  struct Callbacks {
    // The replica's server answered /health 200: route to http://host:port.
    std::function<void(const std::string& id, const std::string& host, const std::string& port)> ready;
    // The server never became ready (`why` says how, with its exit status): given up.
    std::function<void(const std::string& id, const std::string& why)> failed;
    // The server of a replica that was ready exited, or its restart did not come up (`why`
    // says how, and when the next restart is): route around it until `ready` again.
    std::function<void(const std::string& id, const std::string& why)> down;
  };

  EngineReplicas(boost::asio::io_context& ioc, Callbacks callbacks, EngineReplicasOptions options = {});
  ~EngineReplicas();
  EngineReplicas(const EngineReplicas&) = delete;
  EngineReplicas& operator=(const EngineReplicas&) = delete;

  // Spawns replica `id`'s server (ready or failed follow). REQUIRES: `id` not running here.
  Status Start(const std::string& id, const EngineConfig& config);
  // SIGTERM now, SIGKILL after the grace; no callback follows. Unknown ids are ignored.
  void Stop(const std::string& id);

  // kRestarting: its server exited after it was ready; a new one starts after the backoff.
  enum class State { kLoading, kReady, kRestarting, kGone };
  State state(const std::string& id) const;
  pid_t pid(const std::string& id) const;  // -1 if none
  int64_t restarts(const std::string& id) const;  // servers restarted after a crash (0 if unknown)
  size_t size() const { return engines_.size(); }

 private:
  struct Engine;
  void Spawn(Engine& e);
  void Tick();
  void Arm();  // the next Tick, unless one is due or there is nothing to watch
  void Probe(const std::string& id);
  void OnProbe(const std::string& id, int64_t server, int http_status);  // `server`: Engine::server probed
  void Fail(std::string id, const std::string& why);  // a copy: `id` may be the erased engine's
  // The server of `e`, once ready, is gone: `down`, and a restart after the backoff.
  void Crashed(Engine& e, const std::string& why);
  void TickEngine(Engine& e);

  boost::asio::io_context& ioc_;
  Callbacks callbacks_;
  EngineReplicasOptions options_;
  boost::asio::steady_timer timer_;
  bool armed_ = false;
  std::map<std::string, std::unique_ptr<Engine>> engines_;
  // Stopped servers not yet reaped: pid and the polls left before SIGKILL (polls are counted,
  // not clocks read: the timer's period is the only time here).
  std::vector<std::pair<pid_t, int64_t>> stopping_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // probes outliving this see false
};

}  // namespace ll::gateway
