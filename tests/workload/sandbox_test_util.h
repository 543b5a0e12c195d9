// A fixture for the workload sandbox's integration tests: a temp runtime root, a "data_dir"
// with a secret, the system clock, and an io_context run until a condition holds (the events
// the sandbox promises: its listener, its log, files it writes), never a sleep.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "workload/sandbox.h"

namespace ll::workload::testing {

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/bin/bwrap", X_OK) != 0) GTEST_SKIP() << "needs Debian's bubblewrap";
    std::string t = (std::filesystem::temp_directory_path() / "ll-workload-XXXXXX").string();
    ASSERT_NE(mkdtemp(t.data()), nullptr);
    dir_ = t;
    // Traversable (not listable) by the sandboxes' own host uids, as a runtime root must be.
    chmod(dir_.c_str(), 0711);
    data_dir_ = dir_ / "data";
    std::filesystem::create_directories(data_dir_);
    std::ofstream(data_dir_ / "secret") << "the store's notice key\n";
    chmod((data_dir_ / "secret").c_str(), 0644);  // readable by anyone who can see it
  }
  void TearDown() override {
    sandboxes_.clear();
    const SandboxOptions o = Options();
    for (const char* controller : {"pids", "memory"})
      rmdir((std::filesystem::path(o.cgroup_v1_root) / controller / o.cgroup_parent).c_str());
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  SandboxOptions Options(int n = 0) const {
    SandboxOptions o;
    o.runtime_root = dir_ / "rt";
    o.cgroup_parent = "landlord-test-" + std::to_string(getpid());
    o.log_bytes = 64 * 1024;
    o.limits.max_processes = 64;
    o.limits.memory_bytes = 128 << 20;
    if (geteuid() == 0) {  // each sandbox a host uid of its own, as a root server runs them
      o.host_uid = 61000 + n;
      o.host_gid = 61000 + n;
    }
    return o;
  }

  // Starts `argv` as sandbox `name`; its statuses are appended to events_[name].
  Sandbox& StartSandbox(const std::string& name, std::vector<std::string> argv, SandboxOptions o,
                        std::vector<std::string> ssh_keys = {}) {
    LeaseContext lease{
        name, "lease-" + name, {"node-a", "node-b"}, "0,1", "http://127.0.0.1:1/v1/metadata/tok"};
    Spec spec;
    spec.command = std::move(argv);
    spec.env = {{"TENANT_VAR", "tenant value"}};
    spec.ssh_public_keys = std::move(ssh_keys);
    auto sb = std::make_unique<Sandbox>(
        io_, *clock_, std::move(o), lease, spec,
        [this, name](const WorkloadStatus& s) { events_[name].push_back(s); });
    sb->Start();
    sandboxes_.push_back(std::move(sb));
    return *sandboxes_.back();
  }

  // Runs the loop until `done` or `timeout`; false on the timeout.
  bool RunUntil(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    // A tick so that conditions on the outside world (files, ports) are looked at again.
    boost::asio::steady_timer tick(io_);
    std::function<void()> arm = [&] {
      tick.expires_after(std::chrono::milliseconds(20));
      tick.async_wait([&](boost::system::error_code ec) {
        if (!ec) arm();
      });
    };
    arm();
    bool ok = true;
    while (ok && !done()) {
      ok = std::chrono::steady_clock::now() <= deadline;
      if (ok) io_.run_one_for(std::chrono::milliseconds(50));
    }
    tick.cancel();
    io_.poll();  // the tick's cancelled handler, while `tick` and `arm` still exist
    io_.restart();
    return ok;
  }

  static bool Ended(const Sandbox& s) {
    return s.status().state == State::kExited || s.status().state == State::kKilled ||
           s.status().state == State::kFailed;
  }
  static std::string Log(Sandbox& s) { return s.logs().Read(s.logs().begin_offset()).data; }
  static bool LogHas(Sandbox& s, const std::string& text) {
    return Log(s).find(text) != std::string::npos;
  }

  boost::asio::io_context io_;
  std::unique_ptr<Clock> clock_ = NewSystemClock();
  std::filesystem::path dir_, data_dir_;
  std::map<std::string, std::vector<WorkloadStatus>> events_;
  std::vector<std::unique_ptr<Sandbox>> sandboxes_;
};

}  // namespace ll::workload::testing
