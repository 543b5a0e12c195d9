// workload::Sandbox with real bubblewrap: the reclaim notice (SIGTERM, the notice file, SIGKILL
// not before reclaim_at), logs, isolation, bounds on processes and memory, the wipe.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "workload/sandbox_test_util.h"

namespace ll::workload::testing {
namespace {

namespace fs = std::filesystem;

// A training loop's handler: on SIGTERM it writes a checkpoint in its work dir, reads the notice
// file, says when the signal came (ms since the epoch) and exits 42.
constexpr const char* kCheckpointer = R"sh(
trap 'echo step=7 > checkpoint; echo "checkpoint=$(cat checkpoint)"; echo "notice=$(cat "$LANDLORD_NOTICE_FILE")"; echo "term_ms=$(date +%s%3N)"; exit 42' TERM
echo "env=$LANDLORD_LEASE_ID|$LANDLORD_NODES|$CUDA_VISIBLE_DEVICES|$LANDLORD_METADATA_URL|$TENANT_VAR|$HOME|$(pwd)|$(id -u)|$$"
echo ready
while :; do sleep 0.05; done
)sh";

int64_t ParseMs(const std::string& log, const std::string& key) {
  const size_t at = log.find(key + "=");
  if (at == std::string::npos) return -1;
  return std::stoll(log.substr(at + key.size() + 1));
}

TEST_F(SandboxTest, NoticeSigtermsAtOnceAndTheCheckpointIsWrittenBeforeReclaim) {
  Sandbox& s = StartSandbox("ckpt", {"/bin/sh", "-c", kCheckpointer}, Options());
  ASSERT_EQ(s.status().state, State::kRunning) << s.status().error;
  ASSERT_TRUE(s.status().started_at.has_value());
  const fs::path home = s.work_dir();
  EXPECT_EQ(fs::status(home).permissions() & fs::perms::all, fs::perms::owner_all);
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "ready\n"); })) << Log(s);
  RecordProperty("start_to_ready_ms",
                 static_cast<int>((clock_->Now() - *s.status().started_at).ms));
  EXPECT_NE(Log(s).find("env=lease-ckpt|node-a,node-b|0,1|http://127.0.0.1:1/v1/metadata/tok|"
                        "tenant value|/home/tenant|/home/tenant|1000|2\n"),
            std::string::npos)
      << Log(s);

  const Time noticed = clock_->Now();
  const Time reclaim_at = noticed + Duration::Seconds(3);
  s.Notice(reclaim_at, reclaim_at);
  ASSERT_TRUE(RunUntil([&] { return Ended(s); })) << Log(s);
  const std::string log = Log(s);
  EXPECT_NE(log.find("checkpoint=step=7\n"), std::string::npos) << log;
  EXPECT_NE(log.find(fmt::format(R"(notice={{"action":"terminate","time":"{}"}})",
                                 FormatUtc(reclaim_at))),
            std::string::npos)
      << log;
  const int64_t term_ms = ParseMs(log, "term_ms");
  RecordProperty("sigterm_after_notice_ms", static_cast<int>(term_ms - noticed.ms));
  EXPECT_GE(term_ms, noticed.ms);
  EXPECT_LT(term_ms, noticed.ms + 1000) << "SIGTERM must arrive within 1 s of the notice";
  // It exited on its own, with its code: nothing was killed.
  EXPECT_EQ(s.status().state, State::kExited);
  EXPECT_EQ(s.status().exit_code, 42);
  EXPECT_LT(s.status().ended_at->ms, reclaim_at.ms);
  ASSERT_EQ(events_["ckpt"].size(), 2u);
  EXPECT_EQ(events_["ckpt"][0].state, State::kRunning);
  EXPECT_EQ(events_["ckpt"][1].state, State::kExited);
  EXPECT_EQ(events_["ckpt"][1].ToJson()["exit_code"], 42);
  EXPECT_TRUE(s.logs().closed());
  EXPECT_FALSE(fs::exists(home)) << "the work dir is wiped when the workload ends";
  EXPECT_FALSE(fs::exists(home.parent_path()));
}

TEST_F(SandboxTest, AWorkloadIgnoringSigtermIsKilledAtKillTimeNotBefore) {
  Sandbox& s = StartSandbox(
      "stubborn",
      {"/bin/sh", "-c", "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done"},
      Options());
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "ready\n"); })) << Log(s);
  const Time reclaim_at = clock_->Now() + Duration::Millis(1500);
  // A kill time before reclaim_at is moved to reclaim_at.
  s.Notice(reclaim_at, reclaim_at - Duration::Seconds(10));
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "got TERM"); })) << Log(s);
  EXPECT_LT(clock_->Now(), reclaim_at);
  EXPECT_EQ(s.status().state, State::kRunning);
  ASSERT_TRUE(RunUntil([&] { return Ended(s); })) << Log(s);
  EXPECT_EQ(s.status().state, State::kKilled);
  EXPECT_EQ(s.status().exit_code, 128 + SIGKILL);
  EXPECT_GE(s.status().ended_at->ms, reclaim_at.ms);
  EXPECT_LT(s.status().ended_at->ms, reclaim_at.ms + 2000);
  const std::string log = Log(s);
  EXPECT_EQ(log.find("got TERM"), log.rfind("got TERM")) << "one SIGTERM per process: " << log;
  RecordProperty("killed_after_reclaim_at_ms",
                 static_cast<int>(s.status().ended_at->ms - reclaim_at.ms));
}

// A process that left the workload's group and session (setsid) hears the notice too.
TEST_F(SandboxTest, TheNoticeReachesProcessesThatLeftTheGroup) {
  Sandbox& s = StartSandbox(
      "daemon",
      {"/bin/sh", "-c",
       "setsid /bin/sh -c 'trap \"echo daemon got TERM; exit 0\" TERM; echo daemon ready; "
       "while :; do sleep 0.05; done' & "
       "trap 'echo main got TERM' TERM; echo main ready; while :; do sleep 0.05; done"},
      Options());
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "daemon ready") && LogHas(s, "main ready"); }))
      << Log(s);
  const Time reclaim_at = clock_->Now() + Duration::Seconds(30);
  s.Notice(reclaim_at, reclaim_at);
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "daemon got TERM") && LogHas(s, "main got TERM"); }))
      << Log(s);
  s.Stop();
  ASSERT_TRUE(RunUntil([&] { return Ended(s); }));
}

// The kill follows the lease's clock, not the host's: a sped-up or manual clock kills when it
// reaches reclaim_at, and not while it is before.
TEST_F(SandboxTest, TheKillFollowsTheLeasesClock) {
  auto manual = std::make_unique<ManualClock>(clock_->Now());
  ManualClock& clock = *manual;
  clock_ = std::move(manual);
  Sandbox& s = StartSandbox(
      "manual",
      {"/bin/sh", "-c", "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done"},
      Options());
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "ready\n"); })) << Log(s);
  const Time reclaim_at = clock.Now() + Duration::Hours(1);
  s.Notice(reclaim_at, reclaim_at);
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "got TERM"); })) << Log(s);
  // Several of the kill timer's steps (100 ms) pass on the host; the lease's clock has not moved.
  EXPECT_FALSE(RunUntil([&] { return Ended(s); }, std::chrono::milliseconds(500)));
  EXPECT_EQ(s.status().state, State::kRunning);
  clock.Set(reclaim_at);
  ASSERT_TRUE(RunUntil([&] { return Ended(s); }, std::chrono::seconds(5))) << Log(s);
  EXPECT_EQ(s.status().state, State::kKilled);
  EXPECT_EQ(s.status().ended_at, reclaim_at);
}

TEST_F(SandboxTest, NoSignalWhenConfiguredOffButTheNoticeFileAppears) {
  SandboxOptions o = Options();
  o.sigterm_on_notice = false;
  Sandbox& s = StartSandbox("quiet",
                            {"/bin/sh", "-c",
                             "trap 'echo got TERM' TERM; echo ready; "
                             "while [ ! -e \"$LANDLORD_NOTICE_FILE\" ]; do sleep 0.05; done; "
                             "cat \"$LANDLORD_NOTICE_FILE\"; exit 3"},
                            o);
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "ready\n"); })) << Log(s);
  const Time reclaim_at = clock_->Now() + Duration::Seconds(30);
  s.Notice(reclaim_at, reclaim_at);
  ASSERT_TRUE(RunUntil([&] { return Ended(s); })) << Log(s);
  EXPECT_EQ(s.status().exit_code, 3);
  EXPECT_EQ(Log(s).find("got TERM"), std::string::npos) << Log(s);
  EXPECT_NE(Log(s).find("\"action\":\"terminate\""), std::string::npos) << Log(s);
}

TEST_F(SandboxTest, StopKillsAndTheLogRingDropsTheOldestWithAMarker) {
  SandboxOptions o = Options();
  o.log_bytes = 4096;
  Sandbox& s = StartSandbox(
      "chatty",
      {"/bin/sh", "-c",
       "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; echo done; sleep 1000"},
      o);
  uint64_t followed = 0;
  std::string follow;
  s.logs().Subscribe([&] {
    auto c = s.logs().Read(followed);
    follow += c.data;
    followed = c.next_offset;
  });
  ASSERT_TRUE(RunUntil([&] { return LogHas(s, "done\n"); }));
  const auto all = s.logs().Read(0);
  EXPECT_EQ(all.data.rfind("[landlord: ", 0), 0u) << all.data.substr(0, 80);
  EXPECT_NE(all.data.find(" bytes dropped]\n"), std::string::npos);
  EXPECT_NE(all.data.find("line-1999\ndone\n"), std::string::npos);
  EXPECT_EQ(all.data.find("line-0\n"), std::string::npos);
  EXPECT_EQ(s.logs().end_offset(), all.next_offset);
  EXPECT_GT(s.logs().begin_offset(), 0u);
  EXPECT_NE(follow.find("done\n"), std::string::npos);  // the follower kept up, in order
  s.Stop();
  ASSERT_TRUE(RunUntil([&] { return Ended(s); }));
  EXPECT_EQ(s.status().state, State::kKilled);
  EXPECT_TRUE(s.logs().Read(followed).closed);
}

TEST_F(SandboxTest, CannotSeeDataDirNorAnotherWorkloadsWorkDir) {
  Sandbox& a = StartSandbox(
      "lease-a", {"/bin/sh", "-c", "echo private > mine; echo ready; sleep 1000"}, Options(1));
  ASSERT_TRUE(RunUntil([&] { return LogHas(a, "ready\n"); })) << Log(a);
  const fs::path a_file = a.work_dir() / "mine";
  ASSERT_TRUE(fs::exists(a_file));
  const std::string probe = fmt::format(
      "cat {} && echo LEAK-DATA; cat {} && echo LEAK-A; ls {} && echo LEAK-ROOT; "
      "cat /etc/shadow && echo LEAK-SHADOW; touch /usr/x && echo LEAK-USR-RW; "
      "touch /run/landlord/notice.json && echo LEAK-NOTICE-RW; "
      "echo \"root=$(ls / | tr '\\n' ' ')\"; echo probed",
      (data_dir_ / "secret").string(), a_file.string(), Options().runtime_root.string());
  Sandbox& b = StartSandbox("lease-b", {"/bin/sh", "-c", probe}, Options(2));
  ASSERT_TRUE(RunUntil([&] { return Ended(b); })) << Log(b);
  const std::string log = Log(b);
  EXPECT_NE(log.find("probed"), std::string::npos) << log;
  EXPECT_EQ(log.find("LEAK"), std::string::npos) << log;
  EXPECT_EQ(log.find("notice key"), std::string::npos) << log;
  EXPECT_EQ(log.find("private"), std::string::npos) << log;
  // `/` holds only what was bound.
  const size_t root = log.find("root=");
  ASSERT_NE(root, std::string::npos) << log;
  std::istringstream names(log.substr(root + 5, log.find('\n', root) - root - 5));
  const std::set<std::string> bound = {"bin",    "dev",  "etc", "home", "lib", "lib32", "lib64",
                                       "libx32", "proc", "run", "sbin", "tmp", "usr"};
  for (std::string n; names >> n;) EXPECT_TRUE(bound.count(n)) << n;
  a.Stop();
  ASSERT_TRUE(RunUntil([&] { return Ended(a); }));
}

// The pids cgroup's count of refused forks, when cgroups bound it.
int64_t ForkRefusals(const SandboxOptions& o, const std::string& name) {
  std::ifstream f(fs::path(o.cgroup_v1_root) / "pids" / o.cgroup_parent / name / "pids.events");
  std::string key;
  int64_t n = 0;
  f >> key >> n;
  return n;
}

// Each bound alone: the pids cgroup (the sandbox under the server's uid), and RLIMIT_NPROC
// (no cgroups, a host uid of its own).
TEST_F(SandboxTest, AForkBombIsContained) {
  if (geteuid() != 0) GTEST_SKIP() << "processes are bounded by cgroups or a uid of its own: root";
  SandboxOptions by_cgroup = Options();
  by_cgroup.host_uid.reset();
  by_cgroup.host_gid.reset();
  SandboxOptions by_rlimit = Options(3);
  by_rlimit.cgroup_v1_root.clear();
  for (const SandboxOptions& o : {by_cgroup, by_rlimit}) {
    const std::string name = o.cgroup_v1_root.empty() ? "bomb-rlimit" : "bomb-cgroup";
    Sandbox& s =
        StartSandbox(name, {"/bin/sh", "-c", "b() { b | b & }; b; echo bombing; sleep 1000"}, o);
    ASSERT_EQ(s.status().state, State::kRunning) << s.status().error;
    EXPECT_EQ(s.limits_via(), o.cgroup_v1_root.empty() ? "rlimit" : "cgroup-v1");
    ASSERT_TRUE(RunUntil([&] { return ForkRefusals(o, name) > 0 || LogHas(s, "Cannot fork"); }))
        << name << ": " << Log(s).substr(0, 2000);
    // The server can still start processes, and the bomb ends with its sandbox.
    EXPECT_EQ(std::system("true"), 0);
    EXPECT_EQ(s.status().state, State::kRunning);
    s.Stop();
    ASSERT_TRUE(RunUntil([&] { return Ended(s); })) << name;
    EXPECT_EQ(s.status().state, State::kKilled);
    const fs::path cgroup = fs::path(o.cgroup_v1_root) / "pids" / o.cgroup_parent / name;
    EXPECT_TRUE(RunUntil([&] { return o.cgroup_v1_root.empty() || !fs::exists(cgroup); }));
  }
}

TEST_F(SandboxTest, AMemoryHogIsContained) {
  SandboxOptions o = Options(4);
  o.limits.memory_bytes = 64 << 20;
  Sandbox& s =
      StartSandbox("hog",
                   {"/bin/sh", "-c",
                    "x=x; i=0; while [ $i -lt 31 ]; do x=$x$x; i=$((i+1)); done; echo ate 1 GiB"},
                   o);
  ASSERT_TRUE(RunUntil([&] { return Ended(s); })) << Log(s);
  EXPECT_EQ(Log(s).find("ate 1 GiB"), std::string::npos) << Log(s);
  EXPECT_NE(s.status().exit_code, 0);
  if (s.limits_via() == "cgroup-v1") {
    EXPECT_EQ(s.status().state, State::kKilled);
    EXPECT_EQ(s.status().error, "memory limit");
  }
}

TEST_F(SandboxTest, SweepRemovesWhatACrashedRunLeft) {
  const SandboxOptions o = Options();
  fs::create_directories(o.runtime_root / "old-lease" / "home" / "deep");
  std::ofstream(o.runtime_root / "old-lease" / "home" / "deep" / "f") << "x";
  chmod((o.runtime_root / "old-lease" / "home" / "deep").c_str(), 0);  // the tenant's doing
  const fs::path cgroup = fs::path(o.cgroup_v1_root) / "pids" / o.cgroup_parent / "old-lease";
  std::error_code ec;
  const bool cgroups = geteuid() == 0 && fs::create_directories(cgroup, ec);
  ASSERT_TRUE(SweepLeftovers(o).ok());
  EXPECT_FALSE(fs::exists(o.runtime_root / "old-lease"));
  EXPECT_TRUE(fs::exists(o.runtime_root));
  if (cgroups) {
    EXPECT_FALSE(fs::exists(cgroup));
  }
}

TEST_F(SandboxTest, AProgramThatIsNotThereExitsNonZeroAndABadNameFails) {
  Sandbox& s = StartSandbox("nothere", {"/no/such/program"}, Options());
  ASSERT_TRUE(RunUntil([&] { return Ended(s); })) << Log(s);
  EXPECT_EQ(s.status().state, State::kExited);
  EXPECT_NE(s.status().exit_code, 0);
  EXPECT_NE(Log(s).find("/no/such/program"), std::string::npos) << Log(s);
  Sandbox& bad = StartSandbox("../escape", {"/bin/true"}, Options());
  EXPECT_EQ(bad.status().state, State::kFailed);
  EXPECT_NE(bad.status().error.find("bad sandbox name"), std::string::npos);
}

}  // namespace
}  // namespace ll::workload::testing
