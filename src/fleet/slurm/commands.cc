#include "fleet/slurm/commands.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

extern char** environ;

namespace ll::fleet::slurm {
namespace {

// The server's environment with `env` ("K=V") added or replacing; points into both.
std::vector<char*> Environment(const std::vector<std::string>& env) {
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view kv(*e);
    bool replaced = false;
    for (const std::string& x : env)
      replaced = replaced || kv.substr(0, kv.find('=') + 1) == x.substr(0, x.find('=') + 1);
    if (!replaced) envp.push_back(*e);
  }
  for (const std::string& x : env) envp.push_back(const_cast<char*>(x.c_str()));
  envp.push_back(nullptr);
  return envp;
}

std::vector<char*> Args(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  return args;
}

}  // namespace

// Runs argv (found on PATH) with a time limit; stdin is /dev/null; `env` ("K=V") is added to
// (or replaces in) the server's environment.
Result<Output> Run(const std::vector<std::string>& argv, Duration timeout,
                   const std::vector<std::string>& env) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0)
    return Status::Internal(fmt::format("pipe: {}", std::strerror(errno)));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Status::Internal(fmt::format("pipe: {}", std::strerror(errno)));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<char*> args = Args(argv);
  std::vector<char*> envp = Environment(env);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return Status::Unavailable(fmt::format("cannot run `{}`: {}", argv[0], std::strerror(rc)));
  }
  Output o;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout.ms);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  bool timed_out = false;
  char buf[65536];
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? o.out : o.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return Status::Unavailable(
        fmt::format("`{}` did not answer within {} s", argv[0], timeout.ms / 1000));
  o.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return o;
}

Result<Child> Start(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    bool capture) {
  int out[2] = {-1, -1};
  if (capture && pipe2(out, O_CLOEXEC) != 0)
    return Status::Internal(fmt::format("pipe: {}", std::strerror(errno)));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (capture) {
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  } else {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  std::vector<char*> args = Args(argv);
  std::vector<char*> envp = Environment(env);
  Child c;
  const int rc = posix_spawnp(&c.pid, args[0], &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (capture) close(out[1]);
  if (rc != 0) {
    if (capture) close(out[0]);
    return Status::Unavailable(fmt::format("cannot run `{}`: {}", argv[0], std::strerror(rc)));
  }
  c.output_fd = out[0];
  c.pidfd = static_cast<int>(syscall(SYS_pidfd_open, c.pid, 0));
  if (c.pidfd < 0) {
    const int err = errno;
    kill(c.pid, SIGKILL);
    while (waitpid(c.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    if (capture) close(out[0]);
    return Status::Internal(fmt::format("pidfd_open: {}", std::strerror(err)));
  }
  fcntl(c.pidfd, F_SETFD, FD_CLOEXEC);
  return c;
}

// Best effort (cleanup, draining): a failure is logged, not returned.
void RunLogged(const std::vector<std::string>& argv) {
  auto o = Run(argv);
  if (!o.ok() || o->rc != 0) {
    std::string what;
    for (const std::string& a : argv) what += (what.empty() ? "" : " ") + a;
    fmt::print(stderr, "landlord serve: `{}` failed: {}\n", what,
               o.ok() ? (o->err.empty() ? o->out : o->err) : o.status().message());
  }
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// `cmd args...` whose non-zero exit is an error carrying its stderr.
Result<std::string> Call(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env) {
  LL_ASSIGN_OR_RETURN(Output o, Run(argv, Duration::Seconds(15), env));
  if (o.rc != 0) {
    std::string what;
    for (const std::string& a : argv) what += (what.empty() ? "" : " ") + a;
    return Status::Unavailable(
        fmt::format("`{}` failed (exit {}): {}", what, o.rc, Trim(o.err.empty() ? o.out : o.err)));
  }
  return o.out;
}

}  // namespace ll::fleet::slurm
