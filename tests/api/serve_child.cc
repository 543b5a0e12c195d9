#include "api/serve_child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

namespace ll::testing {

Result<ServeChild> SpawnServe(const std::string& bin, const std::string& config, const std::string& admin_key) {
  return SpawnLandlord(bin, {"serve", "--config", config}, admin_key);
}

Result<ServeChild> SpawnLandlord(const std::string& bin, const std::vector<std::string>& args,
                                 const std::string& admin_key) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int fds[2];
  if (pipe(fds) != 0) return Status::Io("pipe failed");
  ServeChild c;
  c.pid = fork();
  if (c.pid < 0) return Status::Io("fork failed");
  if (c.pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    setenv("LANDLORD_ADMIN_KEY", admin_key.c_str(), 1);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  c.out_fd = fds[0];
  // The first line: "landlord serve: listening on http://127.0.0.1:PORT".
  std::string line;
  for (;;) {
    pollfd p{c.out_fd, POLLIN, 0};
    char ch = 0;
    if (poll(&p, 1, 30'000) <= 0 || read(c.out_fd, &ch, 1) != 1) {
      StopServe(c, SIGKILL);
      return Status::Io(fmt::format("{} {} exited or printed nothing in 30 s", bin, args.empty() ? "" : args[0]));
    }
    if (ch == '\n') break;
    line += ch;
  }
  size_t at = line.find("http://");
  if (at == std::string::npos) {
    StopServe(c, SIGKILL);
    return Status::Io(fmt::format("unexpected first line: {}", line));
  }
  c.url = line.substr(at);
  // The rest of the output is not read; the server prints little after its banner.
  fcntl(c.out_fd, F_SETFL, O_NONBLOCK);
  return c;
}

int StopServe(ServeChild& c, int sig) {
  if (c.pid <= 0) return -1;
  kill(c.pid, sig);
  int status = 0;
  waitpid(c.pid, &status, 0);
  c.pid = -1;
  close(c.out_fd);
  c.out_fd = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace ll::testing
