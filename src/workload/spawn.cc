// The bwrap command line and the fork/exec of it (launch.h).
#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "workload/launch.h"

namespace ll::workload::internal {
namespace fs = std::filesystem;

namespace {

// What of the host's /etc a program expects (the loader's cache, name resolution, TLS roots,
// Debian's alternatives links); never passwd, shadow or the service's config.
constexpr const char* kEtc[] = {"ld.so.cache",     "ld.so.conf",    "ld.so.conf.d", "resolv.conf",
                                "hosts",           "nsswitch.conf", "host.conf",    "ssl",
                                "ca-certificates", "alternatives",  "localtime",    "shells",
                                "mime.types",      "protocols",     "services"};

// The launcher when SSH is on: dropbear in the background, then the tenant's argv as is ("$@",
// never parsed by the shell). `-e`: a login gets the workload's environment (LANDLORD_*, the
// spec's env, CUDA_VISIBLE_DEVICES), dropbear's USER, HOME, SHELL and PATH over it.
constexpr const char* kSshLauncher =
    "\"$0\" -F -E -e -s -r /run/landlord/hostkey -p \"$1\" &\nshift\nexec \"$@\"";

}  // namespace

std::vector<std::string> BwrapArgv(const SandboxOptions& o, const Dirs& dirs, const Spec& spec,
                                   int ssh_port) {
  std::vector<std::string> a = {
      o.bwrap, "--unshare-all", "--share-net", "--die-with-parent", "--new-session", "--uid",
      "1000",  "--gid",         "1000",        "--hostname",        "landlord",      "--ro-bind",
      "/usr",  "/usr"};
  for (const char* l : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::error_code ec;
    if (fs::is_symlink(fs::path("/") / l, ec))
      a.insert(a.end(), {"--symlink", fs::read_symlink(fs::path("/") / l, ec).string(),
                         std::string("/") + l});
  }
  a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/etc"});
  for (const char* e : kEtc) {
    const fs::path p = fs::path("/etc") / e;
    if (fs::exists(p)) a.insert(a.end(), {"--ro-bind", p.string(), p.string()});
  }
  for (const std::string& d : o.dev_binds) a.insert(a.end(), {"--dev-bind", d, d});
  a.insert(a.end(), {"--ro-bind", (dirs.run / "passwd").string(), "/etc/passwd", "--ro-bind",
                     (dirs.run / "group").string(), "/etc/group", "--ro-bind", dirs.run.string(),
                     "/run/landlord", "--bind", dirs.home.string(), kSandboxHome, "--chdir",
                     kSandboxHome, "--json-status-fd", "3", "--"});
  if (ssh_port > 0) {
    a.insert(a.end(),
             {"/bin/sh", "-c", kSshLauncher, o.dropbear, fmt::format("127.0.0.1:{}", ssh_port)});
  }
  a.insert(a.end(), spec.command.begin(), spec.command.end());
  return a;
}

std::vector<std::string> SandboxEnv(const LeaseContext& lease, const Spec& spec) {
  std::string nodes;
  for (const std::string& n : lease.nodes) nodes += (nodes.empty() ? "" : ",") + n;
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin",
                                  fmt::format("HOME={}", kSandboxHome),
                                  fmt::format("USER={}", kSandboxUser),
                                  fmt::format("LOGNAME={}", kSandboxUser), "LANG=C.UTF-8"};
  // The tenant's variables may replace the defaults above, never Landlord's below.
  for (const auto& [name, value] : spec.env) {
    const std::string prefix = name + "=";
    std::erase_if(env, [&prefix](const std::string& e) { return e.rfind(prefix, 0) == 0; });
    env.push_back(prefix + value);
  }
  // Landlord's own last, each once (ParseSpec refuses these names; this holds without it too).
  std::erase_if(env, [](const std::string& e) {
    return e.rfind("LANDLORD_", 0) == 0 || e.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0;
  });
  env.push_back("LANDLORD_LEASE_ID=" + lease.lease_id);
  env.push_back("LANDLORD_NODES=" + nodes);
  env.push_back("CUDA_VISIBLE_DEVICES=" + lease.cuda_visible_devices);
  env.push_back(std::string("LANDLORD_NOTICE_FILE=") + kNoticeFile);
  env.push_back("LANDLORD_METADATA_URL=" + lease.metadata_url);
  return env;
}

namespace {

struct ChildPlan {
  std::vector<char*> argv, envp;
  std::vector<const char*> procs_files;
  std::vector<std::pair<int, rlim_t>> rlimits;
  bool switch_uid = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// In the forked child: only async-signal-safe calls. fds: 0 /dev/null, 1 and 2 the output
// pipe, 3 bwrap's status pipe (all moved above 9 first so dup2 never lands on itself).
[[noreturn]] void ExecChild(const ChildPlan& p, int devnull, int out_w, int status_w) {
  const int hi_null = fcntl(devnull, F_DUPFD, 10);
  const int hi_out = fcntl(out_w, F_DUPFD, 10);
  const int hi_status = fcntl(status_w, F_DUPFD, 10);
  if (hi_null < 0 || hi_out < 0 || hi_status < 0 || dup2(hi_null, 0) < 0 || dup2(hi_out, 1) < 0 ||
      dup2(hi_out, 2) < 0 || dup2(hi_status, 3) < 0)
    _exit(126);
  close_range(4, ~0U, 0);
  setsid();
  for (const char* f : p.procs_files) {
    const int fd = open(f, O_WRONLY);
    if (fd < 0 || write(fd, "0", 1) != 1) _exit(125);
    close(fd);
  }
  for (const auto& [res, v] : p.rlimits) {
    const rlimit r{v, v};
    if (setrlimit(res, &r) != 0) _exit(124);
  }
  if (p.switch_uid && (setgroups(0, nullptr) != 0 || setgid(p.gid) != 0 || setuid(p.uid) != 0))
    _exit(123);
  signal(SIGPIPE, SIG_DFL);
  execve(p.argv[0], p.argv.data(), p.envp.data());
  static const char kMsg[] = "landlord: cannot exec bwrap\n";
  [[maybe_unused]] ssize_t n = write(2, kMsg, sizeof kMsg - 1);
  _exit(127);
}

ChildPlan Plan(const SandboxOptions& o, const Cgroups& cg, const std::vector<std::string>& argv,
               const std::vector<std::string>& env) {
  ChildPlan p;
  for (const std::string& s : argv) p.argv.push_back(const_cast<char*>(s.c_str()));
  p.argv.push_back(nullptr);
  for (const std::string& s : env) p.envp.push_back(const_cast<char*>(s.c_str()));
  p.envp.push_back(nullptr);
  for (const std::string& f : cg.procs_files) p.procs_files.push_back(f.c_str());
  p.switch_uid = geteuid() == 0 && o.host_uid.has_value() && *o.host_uid != 0;
  p.uid = o.host_uid.value_or(0);
  p.gid = o.host_gid.value_or(p.uid);
  const Limits& l = o.limits;
  p.rlimits.emplace_back(RLIMIT_CORE, 0);
  // RLIMIT_NPROC counts every process of the real uid: only meaningful under a uid of its own.
  if (l.max_processes > 0 && p.switch_uid)
    p.rlimits.emplace_back(RLIMIT_NPROC, static_cast<rlim_t>(l.max_processes));
  int64_t as = l.address_space_bytes;
  if (as == 0 && cg.dirs.empty()) as = l.memory_bytes;  // no memory cgroup: the cruder bound
  if (as > 0) p.rlimits.emplace_back(RLIMIT_AS, static_cast<rlim_t>(as));
  return p;
}

void ClosePair(int p[2]) {
  close(p[0]);
  close(p[1]);
}

}  // namespace

Result<Child> Spawn(const SandboxOptions& o, const Cgroups& cgroups,
                    const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  const ChildPlan plan = Plan(o, cgroups, argv, env);
  int out[2], status[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Status::Internal("pipe failed");
  if (pipe2(status, O_CLOEXEC) != 0) {
    ClosePair(out);
    return Status::Internal("pipe failed");
  }
  const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t pid = devnull < 0 ? -1 : fork();
  if (pid == 0) ExecChild(plan, devnull, out[1], status[1]);
  const int saved = errno;
  if (devnull >= 0) close(devnull);
  close(out[1]);
  close(status[1]);
  if (pid < 0) {
    close(out[0]);
    close(status[0]);
    return Status::Internal(fmt::format("cannot fork: {}", std::strerror(saved)));
  }
  Child c{pid, PidfdOpen(pid), out[0], status[0]};
  if (c.pidfd < 0) {
    const int err = errno;
    kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    close(out[0]);
    close(status[0]);
    return Status::Internal(fmt::format("pidfd_open: {}", std::strerror(err)));
  }
  fcntl(c.pidfd, F_SETFD, FD_CLOEXEC);
  return c;
}

}  // namespace ll::workload::internal
