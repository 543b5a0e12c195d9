// workload::Sandbox's SSH login with Debian's dropbear inside the sandbox and the real `ssh`
// client: the tenant's key runs a command in the lease's environment, another key is refused.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "api/serve_test_util.h"
#include "workload/sandbox_test_util.h"

namespace ll::workload::testing {
namespace {

namespace fs = std::filesystem;

using ll::testing::Accepts;
using ll::testing::Shell;

std::string NewKey(const fs::path& path) {
  const auto [out, rc] =
      Shell(fmt::format("ssh-keygen -q -t ed25519 -N '' -C test -f {}", path.string()));
  EXPECT_EQ(rc, 0) << out;
  std::ifstream f(path.string() + ".pub");
  std::string line;
  std::getline(f, line);
  return line;
}

TEST_F(SandboxTest, SshWithTheTenantsKeyRunsACommandAnotherKeyIsRefused) {
  if (access("/usr/sbin/dropbear", X_OK) != 0 || access("/usr/bin/ssh", X_OK) != 0)
    GTEST_SKIP() << "needs Debian's dropbear-bin and openssh-client";
  const std::string tenant_key = NewKey(dir_ / "tenant");
  NewKey(dir_ / "stranger");
  Sandbox& s =
      StartSandbox("sshd", {"/bin/sh", "-c", "echo workload-file > here; echo ready; sleep 1000"},
                   Options(5), {tenant_key});
  ASSERT_EQ(s.status().state, State::kRunning) << s.status().error;
  ASSERT_TRUE(s.ssh().has_value());
  const SshAccess ssh = *s.ssh();
  EXPECT_EQ(ssh.user, "tenant");
  EXPECT_EQ(ssh.host_public_key.rfind("ssh-ed25519 ", 0), 0u) << ssh.host_public_key;
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "ready\n") && Accepts(ssh.port); })) << Log(s);
  std::ofstream(dir_ / "known_hosts")
      << fmt::format("[127.0.0.1]:{} {}\n", ssh.port, ssh.host_public_key);

  std::string base;
  for (const std::string& a : ssh.command) base += (base.empty() ? "" : " ") + a;
  const std::string opts = fmt::format(
      "-F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=10 "
      "-o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
      (dir_ / "known_hosts").string());
  // The login lands in the workload's sandbox: its home, its files, its uid, no data_dir.
  const auto [out, rc] =
      Shell(fmt::format("{} -i {} {} 'id -u; pwd; cat here; cat {} || echo no-data-dir'", base,
                        (dir_ / "tenant").string(), opts, (data_dir_ / "secret").string()));
  EXPECT_EQ(rc, 0) << out << Log(s);
  EXPECT_NE(out.find("1000\n/home/tenant\nworkload-file\n"), std::string::npos) << out;
  EXPECT_NE(out.find("no-data-dir"), std::string::npos) << out;
  EXPECT_EQ(out.find("notice key"), std::string::npos) << out;

  const auto [refused, rc2] =
      Shell(fmt::format("{} -i {} {} true", base, (dir_ / "stranger").string(), opts));
  EXPECT_EQ(rc2, 255) << refused;
  EXPECT_NE(refused.find("Permission denied"), std::string::npos) << refused;

  s.Stop();
  ASSERT_TRUE(RunUntil([&] { return Ended(s); })) << Log(s);
  EXPECT_FALSE(s.ssh().has_value());
  EXPECT_FALSE(Accepts(ssh.port));
}

}  // namespace
}  // namespace ll::workload::testing
