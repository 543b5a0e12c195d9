// The sandbox's effects on the host, apart from its Asio lifecycle (sandbox.cc): the work dir,
// the cgroups, the bwrap command line and the fork/exec. Internal to ll_workload.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"
#include "workload/sandbox.h"

namespace ll::workload::internal {

// The host side of one sandbox's files: <runtime_root>/<name>/{home,run}.
struct Dirs {
  std::filesystem::path top, home, run;
};

// Makes the dirs (home: 700, owned by the sandbox's host uid), /etc/passwd and /etc/group for
// it, and, with SSH keys, the authorized_keys and a dropbear host key. REQUIRES: valid name.
Result<Dirs> MakeDirs(const SandboxOptions& o, const LeaseContext& lease, const Spec& spec);
// The host key's public line (`dropbearkey -y`).
Result<std::string> HostPublicKey(const SandboxOptions& o, const Dirs& dirs);
// Writes `text` to `path` atomically (temp file, rename), mode 644.
Status WriteFileAtomic(const std::filesystem::path& path, const std::string& text);
// Removes the tree, also parts the tenant made unreadable; never follows symlinks.
Status Wipe(const std::filesystem::path& top);

// A cgroup per controller (pids, memory) for one sandbox: made with the limits, or not at all.
struct Cgroups {
  std::vector<std::filesystem::path> dirs;  // empty: none (rlimits bound it instead)
  std::vector<std::string> procs_files;     // the child writes itself into each
  std::filesystem::path memory_dir;
  // Makes them; false (and nothing made) where cgroups v1 cannot be used here.
  bool Make(const SandboxOptions& o, const std::string& name);
  // The memory cgroup saw an OOM kill.
  bool OomKilled() const;
  // SIGKILLs what is left in them and removes them; false while some remain (retry).
  bool Remove();
};

// SweepLeftovers (sandbox.h).
Status SweepLeftoversImpl(const SandboxOptions& o);

// Sends `sig` to every process in the pid namespace of the sandbox's pid 1 (the host's pid) that
// left its process group or session (setsid, nohup); the group itself is signalled by the
// caller, so each process hears `sig` once.
void SignalNamespace(pid_t init_pid, int sig);

// pidfd_open(2) and pidfd_send_signal(2) by syscall: glibc 2.36's <sys/pidfd.h> declares them
// without extern "C", so C++ cannot link them.
int PidfdOpen(pid_t pid);
int PidfdSignal(int pidfd, int sig);

// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
Result<int> FreeLoopbackPort();

// The bwrap argv (everything bound, the command last) and the environment it passes on.
std::vector<std::string> BwrapArgv(const SandboxOptions& o, const Dirs& dirs, const Spec& spec,
                                   int ssh_port);
std::vector<std::string> SandboxEnv(const LeaseContext& lease, const Spec& spec);

struct Child {
  pid_t pid = -1;
  int pidfd = -1;      // readable when it exits
  int output_fd = -1;  // its stdout and stderr, one pipe
  int status_fd = -1;  // bwrap's --json-status-fd (the sandbox's pid 1 as the host sees it)
};
// Forks and execs bwrap: stdin /dev/null, in its own session, joined to the cgroups, with the
// rlimits, as the host uid. The parent gets the fds (close-on-exec).
Result<Child> Spawn(const SandboxOptions& o, const Cgroups& cgroups,
                    const std::vector<std::string>& argv, const std::vector<std::string>& env);

}  // namespace ll::workload::internal
