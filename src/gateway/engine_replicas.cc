#include "gateway/engine_replicas.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

namespace ll::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct EngineReplicas::Engine {
  std::string id;
  EngineConfig config;
  pid_t pid = -1;
  int port = 0;
  State state = State::kLoading;
  int spawns = 0;
  int64_t polls_loading = 0;
  bool probing = false;
  int64_t server = 0;           // which server of the replica this is (a probe answers for one)
  bool ever_ready = false;      // supervised from its first ready on
  int64_t restarts = 0;         // servers restarted after a crash
  int crash_streak = 0;         // crashes since it last served `restart_reset`
  int64_t polls_ready = 0;      // polls since it became ready
  int64_t polls_to_restart = 0;  // while kRestarting: polls before the next server
};

namespace {

constexpr const char* kHost = "127.0.0.1";

bool IsExecutable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

// A loopback port that was free a moment ago (the server binds it itself; a lost race ends in
// its exit before ready, and a respawn on another port).
Result<int> FreeLoopbackPort(net::io_context& ioc) {
  beast::error_code ec;
  tcp::acceptor a(ioc);
  a.open(tcp::v4(), ec);
  if (!ec) a.bind(tcp::endpoint(net::ip::make_address_v4(kHost), 0), ec);
  if (ec) return Status::Io(fmt::format("no free loopback port: {}", ec.message()));
  const int port = a.local_endpoint().port();
  a.close(ec);
  return port;
}

std::string ExitText(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("signal {}", WTERMSIG(status));
  return "stopped";
}

// fork + exec rather than posix_spawn: the child asks for SIGKILL when the thread that started
// it goes, so that no server outlives a crashed gateway. Only async-signal-safe calls after fork.
Result<pid_t> SpawnProcess(const std::vector<std::string>& argv, const std::string& log_path) {
  const int out = log_path.empty() ? ::open("/dev/null", O_WRONLY | O_CLOEXEC)
                                   : ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return Status::Io(fmt::format("cannot open `{}`: {}", log_path, std::strerror(errno)));
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int in = ::open("/dev/null", O_RDONLY);
    if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(127);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(out);
  if (pid < 0) return Status::Io(fmt::format("fork: {}", std::strerror(fork_errno)));
  return pid;
}

}  // namespace

Status ValidateEngineConfig(const EngineConfig& c) {
  if (c.engine != "llama.cpp") return Status::Invalid(fmt::format("unknown engine `{}` (known: `llama.cpp`)", c.engine));
  if (!IsExecutable(c.server)) return Status::Invalid(fmt::format("`server`: no executable at `{}`", c.server));
  struct stat st {};
  if (c.model_path.empty() || ::stat(c.model_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::Invalid(fmt::format("`model_path`: no file at `{}`", c.model_path));
  }
  if (c.threads < 1) return Status::Invalid("`threads` must be at least 1");
  return Status::Ok();
}

std::vector<std::string> EngineCommand(const EngineConfig& c, const std::string& host, const std::string& port) {
  std::vector<std::string> argv{c.server, "-m", c.model_path, "-t", std::to_string(c.threads),
                                "--host", host, "--port", port};
  argv.insert(argv.end(), c.args.begin(), c.args.end());
  return argv;
}

std::string EngineShellCommand(const EngineConfig& c, const std::string& host, const std::string& port) {
  std::string out;
  for (const std::string& word : EngineCommand(c, host, port)) {
    if (!out.empty()) out += ' ';
    // 'word', each ' inside as '\'' (close, an escaped quote, reopen).
    out += '\'';
    for (char ch : word) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    out += '\'';
  }
  return out;
}

EngineReplicas::EngineReplicas(net::io_context& ioc, Callbacks callbacks, EngineReplicasOptions options)
    : ioc_(ioc), callbacks_(std::move(callbacks)), options_(options), timer_(ioc) {}

EngineReplicas::~EngineReplicas() {
  *alive_ = false;
  timer_.cancel();
  for (auto& [id, e] : engines_) {
    if (e->pid > 0) stopping_.emplace_back(e->pid, 0);
  }
  for (auto& [pid, polls] : stopping_) {
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
  }
}

Status EngineReplicas::Start(const std::string& id, const EngineConfig& config) {
  LL_RETURN_IF_ERROR(ValidateEngineConfig(config));
  if (engines_.count(id) != 0) return Status::Conflict(fmt::format("engine replica `{}` is running", id));
  auto e = std::make_unique<Engine>();
  e->id = id;
  e->config = config;
  Engine& ref = *e;
  engines_.emplace(id, std::move(e));
  Spawn(ref);
  if (ref.pid < 0) {
    engines_.erase(id);
    return Status::Io(fmt::format("engine replica `{}` could not be started", id));
  }
  Arm();
  return Status::Ok();
}

void EngineReplicas::Spawn(Engine& e) {
  ++e.spawns;
  ++e.server;
  e.probing = false;
  e.polls_loading = 0;
  e.pid = -1;
  Result<int> port = FreeLoopbackPort(ioc_);
  if (!port.ok()) return;
  e.port = *port;
  const std::string log = e.config.log_dir.empty() ? "" : fmt::format("{}/{}.log", e.config.log_dir, e.id);
  Result<pid_t> pid = SpawnProcess(EngineCommand(e.config, kHost, std::to_string(e.port)), log);
  if (pid.ok()) e.pid = *pid;
}

void EngineReplicas::Stop(const std::string& id) {
  auto it = engines_.find(id);
  if (it == engines_.end()) return;
  if (const pid_t pid = it->second->pid; pid > 0) {  // none while it waits for a restart
    ::kill(pid, SIGTERM);
    stopping_.emplace_back(pid, std::max<int64_t>(1, options_.stop_grace.ms / options_.poll.ms));
  }
  engines_.erase(it);
}

EngineReplicas::State EngineReplicas::state(const std::string& id) const {
  auto it = engines_.find(id);
  return it == engines_.end() ? State::kGone : it->second->state;
}

pid_t EngineReplicas::pid(const std::string& id) const {
  auto it = engines_.find(id);
  return it == engines_.end() ? -1 : it->second->pid;
}

int64_t EngineReplicas::restarts(const std::string& id) const {
  auto it = engines_.find(id);
  return it == engines_.end() ? 0 : it->second->restarts;
}

void EngineReplicas::Tick() {
  armed_ = false;
  // Stopped servers: reaped, or killed once their grace is up.
  for (auto it = stopping_.begin(); it != stopping_.end();) {
    int st = 0;
    if (::waitpid(it->first, &st, WNOHANG) != 0) {
      it = stopping_.erase(it);
      continue;
    }
    if (--it->second == 0) ::kill(it->first, SIGKILL);
    ++it;
  }
  std::vector<std::string> ids;
  for (const auto& [id, e] : engines_) ids.push_back(id);
  for (const std::string& id : ids) TickEngine(*engines_.at(id));
  Arm();
}

// One poll of one replica: a restart due, an exit, the reset of a crash streak, a load that
// takes too long, a health probe. May erase `e` (Fail).
void EngineReplicas::TickEngine(Engine& e) {
  if (e.state == State::kRestarting) {
    if (--e.polls_to_restart > 0) return;
    e.state = State::kLoading;
    e.spawns = 0;
    Spawn(e);
    if (e.pid < 0) Crashed(e, "its server could not be started");
    return;
  }
  int st = 0;
  if (::waitpid(e.pid, &st, WNOHANG) == e.pid) {
    if (e.ever_ready) {
      Crashed(e, fmt::format("its server exited ({}) {}", ExitText(st),
                             e.state == State::kReady ? "while serving" : "while loading after a restart"));
      return;
    }
    if (e.spawns < options_.max_spawns) {
      Spawn(e);  // a lost race for the port, or a crash while loading: once more
      if (e.pid >= 0) return;
    }
    Fail(e.id, fmt::format("its server exited ({}) before it was ready", ExitText(st)));
    return;
  }
  if (e.state == State::kReady) {
    if (++e.polls_ready == std::max<int64_t>(1, options_.restart_reset.ms / options_.poll.ms)) e.crash_streak = 0;
    return;
  }
  if (++e.polls_loading > std::max<int64_t>(1, options_.ready_timeout.ms / options_.poll.ms)) {
    ::kill(e.pid, SIGKILL);
    stopping_.emplace_back(e.pid, 1);
    const std::string why = fmt::format("its server was not ready within {} s", options_.ready_timeout.ms / 1000);
    if (e.ever_ready) {
      Crashed(e, why);
    } else {
      Fail(e.id, why);
    }
    return;
  }
  if (!e.probing) Probe(e.id);
}

void EngineReplicas::Crashed(Engine& e, const std::string& why) {
  // The backoff doubles with each crash in a row: 1, 2, 4 ... s, up to the maximum.
  int64_t ms = options_.restart_backoff.ms;
  for (int i = 0; i < e.crash_streak && ms < options_.max_restart_backoff.ms; ++i) ms *= 2;
  ms = std::min(ms, options_.max_restart_backoff.ms);
  ++e.crash_streak;
  ++e.restarts;
  e.state = State::kRestarting;
  e.pid = -1;
  e.polls_to_restart = std::max<int64_t>(1, ms / options_.poll.ms);
  if (callbacks_.down) {
    callbacks_.down(e.id, fmt::format("engine replica `{}`: {}; restart {} in {} ms", e.id, why, e.restarts, ms));
  }
}

void EngineReplicas::Arm() {
  if (armed_ || (engines_.empty() && stopping_.empty())) return;
  armed_ = true;
  timer_.expires_after(std::chrono::milliseconds(options_.poll.ms));
  timer_.async_wait([this, alive = alive_](beast::error_code ec) {
    if (!ec && *alive) Tick();
  });
}

void EngineReplicas::Probe(const std::string& id) {
  Engine& e = *engines_.at(id);
  e.probing = true;
  auto stream = std::make_shared<beast::tcp_stream>(ioc_);
  auto req = std::make_shared<std::string>(
      fmt::format("GET /health HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n", kHost, e.port));
  auto buf = std::make_shared<beast::flat_buffer>();
  auto res = std::make_shared<http::response<http::string_body>>();
  auto done = [this, id, server = e.server, alive = alive_, stream](int status) {
    if (*alive) OnProbe(id, server, status);
  };
  stream->expires_after(std::chrono::milliseconds(options_.probe_timeout.ms));
  const tcp::endpoint ep(net::ip::make_address_v4(kHost), static_cast<unsigned short>(e.port));
  stream->async_connect(ep, [stream, req, buf, res, done](beast::error_code ec) {
    if (ec) return done(0);
    net::async_write(*stream, net::buffer(*req), [stream, req, buf, res, done](beast::error_code ec, size_t) {
      if (ec) return done(0);
      http::async_read(*stream, *buf, *res, [stream, buf, res, done](beast::error_code ec, size_t) {
        done(ec ? 0 : static_cast<int>(res->result_int()));
      });
    });
  });
}

void EngineReplicas::OnProbe(const std::string& id, int64_t server, int http_status) {
  auto it = engines_.find(id);
  if (it == engines_.end()) return;  // stopped or failed meanwhile
  Engine& e = *it->second;
  if (server != e.server) return;  // the answer for a server that is gone
  e.probing = false;
  if (http_status != 200 || e.state != State::kLoading) return;
  e.state = State::kReady;
  e.ever_ready = true;
  e.polls_ready = 0;
  if (callbacks_.ready) callbacks_.ready(id, kHost, std::to_string(e.port));
}

void EngineReplicas::Fail(std::string id, const std::string& why) {
  engines_.erase(id);
  if (callbacks_.failed) callbacks_.failed(id, fmt::format("engine replica `{}`: {}", id, why));
}

}  // namespace ll::gateway
