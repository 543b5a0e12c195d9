// The sandbox's bwrap command line and environment (pure): what is bound, how the tenant's argv
// is passed, which variables are Landlord's.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "workload/launch.h"

namespace ll::workload::internal {
namespace {

using Argv = std::vector<std::string>;

bool HasRun(const Argv& a, const Argv& run) {
  return std::search(a.begin(), a.end(), run.begin(), run.end()) != a.end();
}

TEST(SandboxArgv, BindsOnlyWhatTheWorkloadNeedsAndPassesTheArgvVerbatim) {
  SandboxOptions o;
  o.runtime_root = "/srv/landlord/run";
  o.dev_binds = {"/dev/nvidia3"};
  const Dirs d{"/srv/landlord/run/l1", "/srv/landlord/run/l1/home", "/srv/landlord/run/l1/run"};
  Spec spec;
  spec.command = {"python", "train.py", "$(rm -rf ~)", "; echo"};
  const Argv a = BwrapArgv(o, d, spec, 0);
  EXPECT_EQ(a[0], "/usr/bin/bwrap");
  for (const Argv& run : std::vector<Argv>{
           {"--unshare-all", "--share-net", "--die-with-parent", "--new-session", "--uid", "1000"},
           {"--ro-bind", "/usr", "/usr"},
           {"--bind", "/srv/landlord/run/l1/home", "/home/tenant"},
           {"--ro-bind", "/srv/landlord/run/l1/run", "/run/landlord"},
           {"--ro-bind", "/srv/landlord/run/l1/run/passwd", "/etc/passwd"},
           {"--dev-bind", "/dev/nvidia3", "/dev/nvidia3"}})
    EXPECT_TRUE(HasRun(a, run)) << run[0] << " " << run.back();
  // The tenant's argv is the tail, as is: no shell in between.
  EXPECT_TRUE(std::equal(spec.command.rbegin(), spec.command.rend(), a.rbegin()));
  EXPECT_EQ(a[a.size() - spec.command.size() - 1], "--");
  // Never the host's root, its passwd or shadow, nor the runtime root as a whole.
  for (size_t i = 0; i + 1 < a.size(); ++i) {
    if (a[i] != "--bind" && a[i] != "--ro-bind") continue;
    EXPECT_NE(a[i + 1], "/");
    EXPECT_NE(a[i + 1], "/etc/passwd");
    EXPECT_NE(a[i + 1], "/etc/shadow");
    EXPECT_NE(a[i + 1], "/srv/landlord/run");
    EXPECT_NE(a[i + 1], "/srv/landlord/run/l1");
  }
}

TEST(SandboxArgv, WithSshAFixedLauncherStartsDropbearThenExecsTheArgv) {
  SandboxOptions o;
  o.runtime_root = "/r";
  const Dirs d{"/r/l", "/r/l/home", "/r/l/run"};
  Spec spec;
  spec.command = {"sleep", "1000"};
  const Argv a = BwrapArgv(o, d, spec, 2222);
  const auto dash = std::find(a.begin(), a.end(), "--");
  ASSERT_NE(dash, a.end());
  const Argv tail(dash + 1, a.end());
  ASSERT_EQ(tail.size(), 7u);
  EXPECT_EQ(tail[0], "/bin/sh");
  EXPECT_EQ(tail[1], "-c");
  EXPECT_NE(tail[2].find("exec \"$@\""), std::string::npos);
  EXPECT_EQ(tail[3], "/usr/sbin/dropbear");
  EXPECT_EQ(tail[4], "127.0.0.1:2222");
  EXPECT_EQ(Argv(tail.begin() + 5, tail.end()), spec.command);
}

TEST(SandboxEnv, TheTenantsVariablesThenLandlordsOnce) {
  LeaseContext lease{"l1", "lease-1", {"n1", "n2"}, "2,3", "http://127.0.0.1:8080/v1/meta/tok"};
  Spec spec;
  spec.env = {{"PATH", "/opt/bin:/usr/bin"}, {"WANDB_MODE", "offline"}};
  const Argv env = SandboxEnv(lease, spec);
  auto count = [&](const std::string& prefix) {
    return std::count_if(env.begin(), env.end(),
                         [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
  };
  EXPECT_EQ(count("PATH="), 1);
  EXPECT_TRUE(HasRun(env, {"PATH=/opt/bin:/usr/bin"}));
  EXPECT_TRUE(HasRun(env, {"WANDB_MODE=offline"}));
  EXPECT_TRUE(
      HasRun(env, {"LANDLORD_LEASE_ID=lease-1", "LANDLORD_NODES=n1,n2", "CUDA_VISIBLE_DEVICES=2,3",
                   "LANDLORD_NOTICE_FILE=/run/landlord/notice.json",
                   "LANDLORD_METADATA_URL=http://127.0.0.1:8080/v1/meta/tok"}));
  EXPECT_EQ(count("HOME="), 1);
  // Even a spec that skipped ParseSpec cannot set Landlord's variables.
  spec.env = {{"CUDA_VISIBLE_DEVICES", "0-7"}, {"LANDLORD_LEASE_ID", "other"}};
  const Argv forced = SandboxEnv(lease, spec);
  EXPECT_EQ(std::count(forced.begin(), forced.end(), "CUDA_VISIBLE_DEVICES=2,3"), 1);
  EXPECT_EQ(std::count(forced.begin(), forced.end(), "CUDA_VISIBLE_DEVICES=0-7"), 0);
  EXPECT_EQ(std::count(forced.begin(), forced.end(), "LANDLORD_LEASE_ID=other"), 0);
}

}  // namespace
}  // namespace ll::workload::internal
