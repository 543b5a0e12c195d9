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

std::vector<std::string> EngineCommand(const EngineConfig& c, int port) {
  std::vector<std::string> argv{c.server, "-m", c.model_path, "-t", std::to_string(c.threads),
                                "--host", kHost, "--port", std::to_string(port)};
  argv.insert(argv.end(), c.args.begin(), c.args.end());
  return argv;
}

EngineReplicas::EngineReplicas(net::io_context& ioc, Callbacks callbacks, EngineReplicasOptions options)
    : ioc_(ioc), callbacks_(std::move(callbacks)), options_(options), timer_(ioc) {}

EngineReplicas::~EngineReplicas() {
  *alive_ = false;
  timer_.cancel();
  for (auto& [id, e] : engines_) stopping_.emplace_back(e->pid, 0);
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
  e.polls_loading = 0;
  e.pid = -1;
  Result<int> port = FreeLoopbackPort(ioc_);
  if (!port.ok()) return;
  e.port = *port;
  const std::string log = e.config.log_dir.empty() ? "" : fmt::format("{}/{}.log", e.config.log_dir, e.id);
  Result<pid_t> pid = SpawnProcess(EngineCommand(e.config, e.port), log);
  if (pid.ok()) e.pid = *pid;
}

void EngineReplicas::Stop(const std::string& id) {
  auto it = engines_.find(id);
  if (it == engines_.end()) return;
  ::kill(it->second->pid, SIGTERM);
  stopping_.emplace_back(it->second->pid, std::max<int64_t>(1, options_.stop_grace.ms / options_.poll.ms));
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
  const int64_t max_loading_polls = std::max<int64_t>(1, options_.ready_timeout.ms / options_.poll.ms);
  for (const std::string& id : ids) {
    Engine& e = *engines_.at(id);
    int st = 0;
    if (::waitpid(e.pid, &st, WNOHANG) == e.pid) {
      if (e.state == State::kLoading && e.spawns < options_.max_spawns) {
        Spawn(e);  // a lost race for the port, or a crash while loading: once more
        if (e.pid >= 0) continue;
      }
      Fail(id, fmt::format("its server exited ({}) {}", ExitText(st),
                           e.state == State::kReady ? "while serving" : "before it was ready"));
      continue;
    }
    if (e.state != State::kLoading) continue;
    if (++e.polls_loading > max_loading_polls) {
      ::kill(e.pid, SIGKILL);
      stopping_.emplace_back(e.pid, 1);
      Fail(id, fmt::format("its server was not ready within {} s", options_.ready_timeout.ms / 1000));
      continue;
    }
    if (!e.probing) Probe(id);
  }
  Arm();
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
  auto done = [this, id, alive = alive_, stream](int status) {
    if (*alive) OnProbe(id, status);
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

void EngineReplicas::OnProbe(const std::string& id, int http_status) {
  auto it = engines_.find(id);
  if (it == engines_.end()) return;  // stopped or failed meanwhile
  Engine& e = *it->second;
  e.probing = false;
  if (http_status != 200 || e.state != State::kLoading) return;
  e.state = State::kReady;
  if (callbacks_.ready) callbacks_.ready(id, kHost, std::to_string(e.port));
}

void EngineReplicas::Fail(const std::string& id, const std::string& why) {
  engines_.erase(id);
  if (callbacks_.failed) callbacks_.failed(id, fmt::format("engine replica `{}`: {}", id, why));
}

}  // namespace ll::gateway
