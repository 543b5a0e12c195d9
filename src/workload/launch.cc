#include "workload/launch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ll::workload::internal {
namespace fs = std::filesystem;

namespace {

Status Errno(std::string_view what, const fs::path& path) {
  return Status::Io(fmt::format("{} `{}`: {}", what, path.string(), std::strerror(errno)));
}

bool Root() { return geteuid() == 0; }

// The uid and gid the sandbox runs as on the host.
uid_t HostUid(const SandboxOptions& o) { return o.host_uid.value_or(geteuid()); }
gid_t HostGid(const SandboxOptions& o) { return o.host_gid.value_or(getegid()); }

Status MakeDir(const fs::path& p, mode_t mode, std::optional<uid_t> uid = {},
               std::optional<gid_t> gid = {}) {
  if (mkdir(p.c_str(), mode) != 0 && errno != EEXIST) return Errno("cannot make", p);
  if (chmod(p.c_str(), mode) != 0) return Errno("cannot chmod", p);
  if (uid && Root() && chown(p.c_str(), *uid, gid.value_or(static_cast<gid_t>(-1))) != 0)
    return Errno("cannot chown", p);
  return Status::Ok();
}

Status WriteFile(const fs::path& p, const std::string& text, mode_t mode,
                 std::optional<uid_t> uid = {}, std::optional<gid_t> gid = {}) {
  const int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Errno("cannot write", p);
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  fchmod(fd, mode) == 0 &&
                  (!uid || !Root() || fchown(fd, *uid, gid.value_or(static_cast<gid_t>(-1))) == 0);
  const int saved = errno;
  close(fd);
  errno = saved;
  return ok ? Status::Ok() : Errno("cannot write", p);
}

// Runs a helper (dropbearkey) to completion; its output, or an error with it.
Result<std::string> RunHelper(const std::vector<std::string>& argv) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Status::Internal("pipe failed");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) != 0;) {
    if (n > 0)
      text.append(buf, static_cast<size_t>(n));
    else if (errno != EINTR)
      break;
  }
  close(out[0]);
  int st = 0;
  while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return Status::Internal(fmt::format("`{}` failed: {}", argv[0], text));
  return text;
}

}  // namespace

Result<Dirs> MakeDirs(const SandboxOptions& o, const LeaseContext& lease, const Spec& spec) {
  Dirs d{o.runtime_root / lease.name, o.runtime_root / lease.name / "home",
         o.runtime_root / lease.name / "run"};
  const uid_t uid = HostUid(o);
  const gid_t gid = HostGid(o);
  std::error_code ec;
  fs::create_directories(o.runtime_root, ec);
  if (ec)
    return Status::Io(fmt::format("cannot make `{}`: {}", o.runtime_root.string(), ec.message()));
  if (fs::exists(d.top)) LL_RETURN_IF_ERROR(Wipe(d.top));  // a leftover of a crash
  // top: traversable by the host uid (it binds home and run) and by nobody's listing.
  LL_RETURN_IF_ERROR(MakeDir(d.top, Root() ? 0711 : 0700));
  LL_RETURN_IF_ERROR(MakeDir(d.home, 0700, uid, gid));
  LL_RETURN_IF_ERROR(MakeDir(d.run, 0755));
  LL_RETURN_IF_ERROR(
      WriteFile(d.run / "passwd",
                fmt::format("{}:x:1000:1000::{}:/bin/sh\n", kSandboxUser, kSandboxHome), 0644));
  LL_RETURN_IF_ERROR(WriteFile(d.run / "group", fmt::format("{}:x:1000:\n", kSandboxUser), 0644));
  if (spec.ssh_public_keys.empty()) return d;
  // dropbear insists: .ssh 700 and authorized_keys 600, owned by the user it logs in.
  LL_RETURN_IF_ERROR(MakeDir(d.home / ".ssh", 0700, uid, gid));
  std::string keys;
  for (const std::string& k : spec.ssh_public_keys) keys += k + "\n";
  LL_RETURN_IF_ERROR(WriteFile(d.home / ".ssh" / "authorized_keys", keys, 0600, uid, gid));
  LL_ASSIGN_OR_RETURN(std::string out, RunHelper({o.dropbearkey, "-t", "ed25519", "-f",
                                                  (d.run / "hostkey").string()}));
  (void)out;
  if (Root() && chown((d.run / "hostkey").c_str(), uid, gid) != 0)
    return Errno("cannot chown", d.run / "hostkey");
  return d;
}

Result<std::string> HostPublicKey(const SandboxOptions& o, const Dirs& dirs) {
  LL_ASSIGN_OR_RETURN(std::string out,
                      RunHelper({o.dropbearkey, "-y", "-f", (dirs.run / "hostkey").string()}));
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("ssh-", 0) == 0) return line.substr(0, line.find(' ', line.find(' ') + 1));
  }
  return Status::Internal("`dropbearkey -y` printed no public key");
}

Status WriteFileAtomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  LL_RETURN_IF_ERROR(WriteFile(tmp, text, 0644));
  if (rename(tmp.c_str(), path.c_str()) != 0) return Errno("cannot rename to", path);
  return Status::Ok();
}

Status Wipe(const fs::path& top) {
  std::error_code ec;
  // The tenant may have made dirs without rwx for their owner: give it back first (as root it
  // is not needed, as the same uid it is). recursive_directory_iterator does not follow links.
  if (fs::is_directory(fs::symlink_status(top))) {
    chmod(top.c_str(), 0700);
    for (auto it = fs::recursive_directory_iterator(
             top, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) chmod(it->path().c_str(), 0700);
    }
  }
  fs::remove_all(top, ec);
  if (ec) return Status::Io(fmt::format("cannot wipe `{}`: {}", top.string(), ec.message()));
  return Status::Ok();
}

bool Cgroups::Make(const SandboxOptions& o, const std::string& name) {
  if (o.cgroup_v1_root.empty() || !Root()) return false;
  const fs::path root(o.cgroup_v1_root);
  const fs::path pids = root / "pids" / o.cgroup_parent / name;
  const fs::path mem = root / "memory" / o.cgroup_parent / name;
  if (!fs::exists(root / "pids" / "cgroup.procs") || !fs::exists(root / "memory" / "cgroup.procs"))
    return false;  // not cgroups v1 with these controllers
  auto write = [](const fs::path& p, const std::string& v) {
    std::ofstream f(p);
    f << v;
    f.flush();
    return static_cast<bool>(f);
  };
  bool ok = true;
  for (const fs::path& d : {pids, mem}) {
    std::error_code ec;
    fs::create_directories(d, ec);
    ok = ok && !ec;
    if (!ec) dirs.push_back(d);
  }
  const Limits& l = o.limits;
  if (ok && l.max_processes > 0) ok = write(pids / "pids.max", std::to_string(l.max_processes));
  if (ok && l.memory_bytes > 0) {
    ok = write(mem / "memory.limit_in_bytes", std::to_string(l.memory_bytes));
    if (ok && fs::exists(mem / "memory.memsw.limit_in_bytes"))
      ok = write(mem / "memory.memsw.limit_in_bytes", std::to_string(l.memory_bytes));
  }
  if (!ok) {
    Remove();
    dirs.clear();
    return false;
  }
  memory_dir = mem;
  for (const fs::path& d : dirs) procs_files.push_back((d / "cgroup.procs").string());
  return true;
}

bool Cgroups::OomKilled() const {
  if (memory_dir.empty()) return false;
  std::ifstream f(memory_dir / "memory.oom_control");
  for (std::string key; f >> key;) {
    int64_t v = 0;
    f >> v;
    if (key == "oom_kill") return v > 0;
  }
  return false;
}

bool Cgroups::Remove() {
  bool all = true;
  for (const fs::path& d : dirs) {
    std::ifstream procs(d / "cgroup.procs");
    for (pid_t pid; procs >> pid;) kill(pid, SIGKILL);
    if (rmdir(d.c_str()) != 0 && errno != ENOENT) all = false;
  }
  return all;
}

Status SweepLeftoversImpl(const SandboxOptions& o) {
  std::error_code ec;
  Status first;
  for (const auto& e : fs::directory_iterator(o.runtime_root, ec)) {
    Status st = Wipe(e.path());
    if (first.ok() && !st.ok()) first = st;
  }
  if (o.cgroup_v1_root.empty()) return first;
  Cgroups cg;
  for (const char* controller : {"pids", "memory"}) {
    const fs::path parent = fs::path(o.cgroup_v1_root) / controller / o.cgroup_parent;
    for (const auto& e : fs::directory_iterator(parent, ec)) {
      if (e.is_directory(ec)) cg.dirs.push_back(e.path());
    }
  }
  for (int i = 0; i < 100 && !cg.Remove(); ++i) usleep(10'000);  // SIGKILLed ones die at once
  if (first.ok() && !cg.Remove()) first = Status::Io("cannot remove a leftover cgroup");
  return first;
}

void SignalNamespace(pid_t init_pid, int sig) {
  std::error_code ec;
  const fs::path ns =
      fs::read_symlink(fs::path("/proc") / std::to_string(init_pid) / "ns" / "pid", ec);
  if (ec) return;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const pid_t pid = std::stoi(name);
    std::error_code ec2;
    // Those still in pid 1's process group had the group's signal: not twice.
    if (pid != init_pid && getpgid(pid) != init_pid && fs::read_symlink(e.path() / "ns" / "pid", ec2) == ns &&
        !ec2)
      kill(pid, sig);
  }
}

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

Result<int> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Internal("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(fd);
  if (!ok) return Status::Internal(fmt::format("no free loopback port: {}", std::strerror(errno)));
  return static_cast<int>(ntohs(a.sin_port));
}

}  // namespace ll::workload::internal
