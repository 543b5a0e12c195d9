// Runs a lease's workload on this machine (the sim fleet's) in a bubblewrap sandbox, driven by
// the server's Asio loop.
//
// The sandbox: new user, pid, mount, ipc, uts and cgroup namespaces (the network is shared, so a
// workload reaches the metadata URL and its SSH port is on loopback); uid 1000 inside; /usr and a
// few files of /etc read-only; a private work dir as its home and cwd (mode 700, wiped when the
// workload ends: the sanitize step); nothing else of the host, so no `data_dir` and no other
// lease's files. When the server is root it also runs the sandbox as a host uid of its own
// (`host_uid`), so file permissions separate leases even outside the mount namespace.
// Processes and memory are bounded by cgroups v1 (pids, memory) where the server may create
// them, else by rlimits (RLIMIT_NPROC under a host uid of its own, RLIMIT_AS).
//
// The reclaim notice: Notice() writes the notice file (AWS's spot/instance-action shape), sends
// SIGTERM to the workload's process group at once (unless `sigterm_on_notice` is off), and
// SIGKILLs the whole sandbox at `kill_at`, never before `reclaim_at`. The workload's stdout and
// stderr go to a bounded LogRing. With SSH keys, a dropbear server runs in the same sandbox on a
// loopback port and accepts only those keys.
//
// Threading: every method, and the listener, runs on the io_context's thread.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/time.h"
#include "workload/log_ring.h"
#include "workload/runner.h"
#include "workload/spec.h"
#include "workload/status.h"

namespace ll::workload {

struct Limits {
  int64_t memory_bytes = 0;   // 0: unbounded. Memory (+swap) cgroup limit; RLIMIT_AS without one
  int64_t max_processes = 0;  // 0: unbounded. pids cgroup; RLIMIT_NPROC under a host uid
  int64_t address_space_bytes = 0;  // 0: none. RLIMIT_AS always (off by default: CUDA maps a lot)
};

struct SandboxOptions {
  std::filesystem::path runtime_root;  // REQUIRED: the work dirs are made under it
  std::string bwrap = "/usr/bin/bwrap";
  std::string dropbear = "/usr/sbin/dropbear";
  std::string dropbearkey = "/usr/bin/dropbearkey";
  std::string cgroup_v1_root = "/sys/fs/cgroup";  // empty: no cgroups, rlimits only
  std::string cgroup_parent = "landlord";         // under each controller
  Limits limits;
  size_t log_bytes = 1 << 20;
  bool sigterm_on_notice = true;
  // The host uid and gid the sandbox runs as. Needs a root server; unset: the server's own.
  std::optional<uid_t> host_uid;
  std::optional<gid_t> host_gid;
  std::vector<std::string> dev_binds;  // devices bound in (the lease's /dev/nvidiaN, …)
};

// What Landlord tells the workload about its lease.
struct LeaseContext {
  std::string name;  // [A-Za-z0-9_-]{1,64}: names the work dir and cgroups (e.g. the lease id)
  std::string lease_id;
  std::vector<std::string> nodes;  // LANDLORD_NODES, comma-separated
  std::string cuda_visible_devices;
  std::string metadata_url;  // LANDLORD_METADATA_URL, with the lease's token
};

// Paths inside the sandbox.
inline constexpr const char* kSandboxHome = "/home/tenant";
inline constexpr const char* kSandboxUser = "tenant";
inline constexpr const char* kNoticeFile = "/run/landlord/notice.json";

class Sandbox final : public Runner {
 public:
  // The listener (Runner::Listener) hears the end after the work dir is wiped.

  Sandbox(boost::asio::io_context& io, const Clock& clock, SandboxOptions options,
          LeaseContext lease, Spec spec, Listener listener);
  // Kills what still runs, waits for it and wipes the work dir (blocking; without the listener).
  ~Sandbox() override;
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Starts the workload once; a failure is the kFailed status (and the listener), not a crash.
  void Start() override;
  // The reclaim notice: writes the notice file, SIGTERMs the process group (if configured) and
  // SIGKILLs everything at max(kill_at, reclaim_at). A later notice may move the kill earlier,
  // never before its own reclaim_at.
  void Notice(Time reclaim_at, Time kill_at) override;
  // Ends it (the lease was released): SIGTERM, then SIGKILL after `grace` (zero: at once).
  void Stop(Duration grace = Duration{}) override;

  const WorkloadStatus& status() const override;
  LogRing& logs() override;
  const std::optional<SshAccess>& ssh() const override;
  // How processes and memory are bounded here: "cgroup-v1" or "rlimit".
  const std::string& limits_via() const;
  // The work dir on the host (the sandbox's home). Empty before Start.
  std::filesystem::path work_dir() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// At the server's start: wipes the work dirs and removes the cgroups a previous run left under
// `runtime_root` and `cgroup_parent` (after a crash: its sandboxes died with it, bwrap's
// --die-with-parent, but their files stayed). REQUIRES: no Sandbox of these options is alive.
Status SweepLeftovers(const SandboxOptions& options);

}  // namespace ll::workload
