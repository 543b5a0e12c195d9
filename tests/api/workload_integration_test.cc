// Workloads on leases, end to end: a real `landlord serve` (sim fleet, 20x clock: the 20 s
// notice is 1 s of wall time), real bubblewrap sandboxes, the HTTP API. The owner's demand
// forces a reclaim; the workload hears it (SIGTERM, the notice file, the metadata service) and
// checkpoints; its status, events and logs are on the lease.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "api/serve_test_util.h"
#include "core/time.h"

namespace ll::testing {
namespace {

using nlohmann::json;

// A training loop's handler: on SIGTERM it writes a checkpoint, reads the notice file, says when
// the signal came (wall ms since the epoch) and exits 42.
constexpr const char* kCheckpointer = R"sh(
trap 'echo step=7 > checkpoint; echo "checkpoint=$(cat checkpoint)"; echo "notice=$(cat "$LANDLORD_NOTICE_FILE")"; echo "term_ms=$(date +%s%3N)"; exit 42' TERM
echo "url=$LANDLORD_METADATA_URL"
echo ready
while :; do sleep 0.05; done
)sh";

// Ignores SIGTERM: Landlord kills it, at reclaim_at and not before.
constexpr const char* kStubborn = R"sh(
trap 'echo "got TERM"' TERM
echo ready
while :; do sleep 0.05; done
)sh";

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Time T(const json& v) {
  auto t = ParseUtc(v.get<std::string>());
  EXPECT_TRUE(t.ok()) << v;
  return t.ok() ? *t : Time{};
}

// The value after `key=` on its line of `log`, or "".
std::string LogValue(const std::string& log, const std::string& key) {
  const size_t at = log.find(key + "=");
  if (at == std::string::npos) return "";
  const size_t from = at + key.size() + 1;
  return log.substr(from, log.find('\n', from) - from);
}

// `log` without dropbear's own lines (`[PID] Mon DD HH:MM:SS ...`): dropbear writes to the same
// log as the workload, so its lines may fall between any two of the workload's.
std::string WithoutDropbearLines(const std::string& log) {
  std::string out;
  for (size_t at = 0; at < log.size();) {
    size_t end = log.find('\n', at);
    end = end == std::string::npos ? log.size() : end + 1;
    const std::string_view line(log.data() + at, end - at);
    const size_t close = line.find("] ");
    const bool dropbear = line.starts_with('[') && close != std::string_view::npos && close > 1 &&
                          line.substr(1, close - 1).find_first_not_of("0123456789") == std::string_view::npos;
    if (!dropbear) out.append(line);
    at = end;
  }
  return out;
}

class WorkloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/bin/bwrap", X_OK) != 0) GTEST_SKIP() << "needs Debian's bubblewrap";
    dir_ = TempDir();
    chmod(dir_.c_str(), 0711);  // the sandboxes' own uids traverse it to their work dirs
    config_ = TestConfig(dir_, "spot-all",
                         fmt::format("[workloads]\nruntime_root = \"{}/rt\"\nmax_processes = 64\nmemory_mb = 256\n", dir_));
    server_.Start(config_);
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Stop(), 0);
    }
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  json Call(const std::string& key, const std::string& method, const std::string& target, const json& body = nullptr,
            int* status = nullptr) {
    auto r = server_.Client(key).Request(method, target, body.is_null() ? "" : body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    if (status != nullptr) *status = r->status;
    return Json(*r);
  }
  std::string Text(const std::string& key, const std::string& target, int* status = nullptr) {
    auto r = server_.Client(key).Request("GET", target, "", Duration::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (status != nullptr) *status = r.ok() ? r->status : 0;
    return r.ok() ? r->body : "";
  }
  json CreateWithWorkload(const std::string& key, const std::string& script, int gpus = 8,
                          const json& env = {{"STEP_EVERY", "1"}}) {
    int status = 0;
    json l = Call(key, "POST", "/v1/leases",
                  {{"gpus", gpus},
                   {"max_price_per_gpu_hour", "2.00"},
                   {"workload", {{"command", {"/bin/sh", "-c", script}}, {"env", env}}}},
                  &status);
    EXPECT_EQ(status, 201) << l.dump();
    return l;
  }
  // Reads the lease's log until it holds `text` (what the workload promises to print), 20 s at most.
  std::string WaitLog(const std::string& key, const std::string& id, const std::string& text) {
    std::string log;
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20); std::chrono::steady_clock::now() < until;) {
      log = Text(key, "/v1/leases/" + id + "/logs");
      if (log.find(text) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return log;
  }
  std::vector<json> Watch(const std::string& key, const std::string& id) { return WatchLease(server_, key, id); }
  // The lease once its workload is no longer running (20 s at most).
  json WaitEnded(const std::string& key, const std::string& id) {
    json l;
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20); std::chrono::steady_clock::now() < until;) {
      l = Call(key, "GET", "/v1/leases/" + id);
      if (l["workload"]["state"] != "running") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return l;
  }

  std::string dir_, config_;
  ServeProcess server_;
};

TEST_F(WorkloadTest, ReclaimNoticeReachesTheWorkloadWhichCheckpointsAndExits) {
  const std::string key = NewTenantKey(server_, "acme");
  const std::string other = NewTenantKey(server_, "other");
  json lease = CreateWithWorkload(key, kCheckpointer);
  const std::string id = lease["id"];
  EXPECT_EQ(lease["workload"]["state"], "running") << lease.dump();
  EXPECT_EQ(lease["workload"]["env"], json::array({"STEP_EVERY"})) << "the names, never the values";
  json stubborn = CreateWithWorkload(key, kStubborn);
  std::string log = WaitLog(key, id, "ready\n");
  ASSERT_NE(log.find("ready\n"), std::string::npos) << log;
  ASSERT_NE(WaitLog(key, stubborn["id"], "ready\n").find("ready\n"), std::string::npos);
  const std::string url = LogValue(log, "url");
  ASSERT_NE(url.find("/metadata/"), std::string::npos) << log;
  const std::string metadata = url.substr(url.find("/metadata/"));
  const std::string action = metadata + "latest/meta-data/spot/instance-action";

  // Before the notice: 404 (a handler polling it sees nothing yet); the lease is there.
  int status = 0;
  Text("", action, &status);
  EXPECT_EQ(status, 404);
  EXPECT_EQ(Call("", "GET", metadata + "lease")["id"], id);
  Text("", "/metadata/not-a-token/latest/meta-data/spot/instance-action", &status);
  EXPECT_EQ(status, 404);
  // A long poll and a log follower, both before the notice.
  std::string waited, followed;
  int waited_status = 0;
  std::thread poll([&] { waited = Text("", action + "?wait=true&timeout_s=30", &waited_status); });
  std::thread follow([&] { followed = Text(key, "/v1/leases/" + id + "/logs?follow=true"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // both requests are in (no promise to wait on)

  // The owner wants the whole fleet: both leases get the notice.
  const int64_t before_notice = WallMs();
  Call(kAdminKey, "POST", "/admin/internal-jobs", {{"gpus", 32}, {"duration_s", 3600}}, &status);
  EXPECT_EQ(status, 201);
  std::vector<json> events = Watch(key, id);
  poll.join();
  follow.join();

  std::vector<std::string> types;
  const json* notice = nullptr;
  const json* exited = nullptr;
  for (const json& e : events) {
    types.push_back(e["_event"]);
    if (e["_event"] == "reclaim_notice") notice = &e;
    if (e["_event"] == "workload_exited") exited = &e;
  }
  EXPECT_EQ(types, (std::vector<std::string>{"active", "workload_started", "reclaim_notice", "workload_exited", "reclaimed"}));
  ASSERT_NE(notice, nullptr);
  ASSERT_NE(exited, nullptr);
  const Time reclaim_at = T((*notice)["reclaim_at"]);
  EXPECT_EQ((*exited)["exit_code"], 42);
  EXPECT_EQ((*exited)["state"], "exited") << "it exited on its own: nothing was killed before reclaim_at";

  log = Text(key, "/v1/leases/" + id + "/logs");
  EXPECT_NE(log.find("checkpoint=step=7\n"), std::string::npos) << log;
  EXPECT_NE(log.find(fmt::format(R"(notice={{"action":"terminate","time":"{}"}})", FormatUtc(reclaim_at))),
            std::string::npos)
      << log;
  const int64_t term_ms = std::stoll("0" + LogValue(log, "term_ms"));
  RecordProperty("sigterm_after_notice_request_ms", static_cast<int>(term_ms - before_notice));
  EXPECT_GE(term_ms, before_notice);
  EXPECT_LT(term_ms, before_notice + 1000) << "SIGTERM within 1 s of the notice";
  EXPECT_EQ(followed, log) << "the follower got everything, and its stream ended with the workload";
  EXPECT_EQ(waited_status, 200) << waited;
  EXPECT_EQ(json::parse(waited, nullptr, false),
            (json{{"action", "terminate"}, {"time", FormatUtc(reclaim_at)}}));
  EXPECT_EQ(Call("", "GET", action)["time"], FormatUtc(reclaim_at));

  json final = Call(key, "GET", "/v1/leases/" + id);
  EXPECT_EQ(final["state"], "reclaimed");
  EXPECT_EQ(final["workload"]["state"], "exited");
  EXPECT_EQ(final["workload"]["exit_code"], 42);
  EXPECT_LE(T(final["workload"]["ended_at"]), reclaim_at);
  EXPECT_LE(T(final["workload"]["started_at"]), T((*notice)["at"]));

  // The one that ignored SIGTERM was killed at reclaim_at, not before, and its stream says so
  // before the lease's final event (which ends the stream): the kill is recorded with the end.
  std::vector<std::string> stubborn_types;
  json killed;
  for (const json& e : Watch(key, stubborn["id"])) {
    stubborn_types.push_back(e["_event"]);
    if (e["_event"] == "workload_exited") killed = e;
  }
  EXPECT_EQ(stubborn_types,
            (std::vector<std::string>{"active", "workload_started", "reclaim_notice", "workload_exited", "reclaimed"}));
  EXPECT_EQ(killed["state"], "killed") << killed.dump();
  EXPECT_EQ(killed["exit_code"], 128 + 9) << "SIGKILL";
  json s = Call(key, "GET", "/v1/leases/" + stubborn["id"].get<std::string>());
  EXPECT_EQ(s["workload"]["state"], "killed") << s.dump();
  EXPECT_EQ(s["workload"]["exit_code"], 128 + 9) << s.dump();
  EXPECT_GE(T(s["workload"]["ended_at"]), T(s["reclaim_at"])) << "never killed before reclaim_at";
  EXPECT_NE(Text(key, "/v1/leases/" + s["id"].get<std::string>() + "/logs").find("got TERM"), std::string::npos);

  // Another tenant's logs are 404, as its lease is.
  Text(other, "/v1/leases/" + id + "/logs", &status);
  EXPECT_EQ(status, 404);
  Text(other, "/v1/leases/" + id + "/logs?follow=true", &status);
  EXPECT_EQ(status, 404);
}

TEST_F(WorkloadTest, BadWorkloadFieldsAre400NamingThemAndCreateNothing) {
  const std::string key = NewTenantKey(server_, "acme");
  const std::vector<std::pair<json, std::string>> cases = {
      {json::array({"sh"}), "workload"},
      {json{{"env", json::object()}}, "workload.command"},
      {json{{"command", json::array()}}, "workload.command"},
      {json{{"command", {"sh", 1}}}, "workload.command[1]"},
      {json{{"command", {"sh"}}, {"env", {{"LANDLORD_X", "1"}}}}, "workload.env.LANDLORD_X"},
      {json{{"command", {"sh"}}, {"env", {{"1BAD", "1"}}}}, "workload.env.1BAD"},
      {json{{"command", {"sh"}}, {"ssh_public_keys", {"ssh-dss AAAA"}}}, "workload.ssh_public_keys[0]"},
      {json{{"command", {"sh"}}, {"image", "-rm"}}, "workload.image"},
      {json{{"command", {"sh"}}, {"shell", true}}, "workload.shell"},
  };
  for (const auto& [w, param] : cases) {
    int status = 0;
    json e = Call(key, "POST", "/v1/leases", {{"gpus", 8}, {"max_price_per_gpu_hour", "2.00"}, {"workload", w}}, &status);
    EXPECT_EQ(status, 400) << w.dump();
    EXPECT_EQ(e["error"]["param"], param) << e.dump();
  }
  EXPECT_TRUE(Call(key, "GET", "/v1/leases")["data"].empty()) << "nothing was created";
}

TEST_F(WorkloadTest, AWorkloadRunningWhenTheServerStoppedShowsItEnded) {
  const std::string key = NewTenantKey(server_, "acme");
  json lease = CreateWithWorkload(key, kStubborn);
  const std::string id = lease["id"];
  ASSERT_NE(WaitLog(key, id, "ready\n").find("ready\n"), std::string::npos);
  ASSERT_EQ(server_.Stop(), 0);
  server_.Start(config_);
  json l = Call(key, "GET", "/v1/leases/" + id);
  EXPECT_EQ(l["state"], "active") << "the lease itself survives a restart";
  EXPECT_EQ(l["workload"]["state"], "killed") << l.dump();
  EXPECT_EQ(l["workload"]["error"], "server restarted");
  EXPECT_FALSE(l["workload"]["ended_at"].is_null());
  int status = 0;
  Text(key, "/v1/leases/" + id + "/logs", &status);
  EXPECT_EQ(status, 404) << "logs live in the server's memory";
  Call(key, "DELETE", "/v1/leases/" + id);
  std::vector<std::string> types;
  for (const json& e : Watch(key, id)) types.push_back(e["_event"]);
  EXPECT_EQ(types, (std::vector<std::string>{"active", "workload_started", "workload_exited", "released"}));
}

// The tenant's path, all through the CLI: `lease create -- CMD` with an SSH key, `lease logs`,
// `lease logs -f`, `lease ssh` with the real `ssh` (Debian's openssh-client) into the lease's
// environment; another key is refused.
TEST_F(WorkloadTest, TheCliRunsAWorkloadFollowsItsLogsAndSshesInAnotherKeyIsRefused) {
  if (access("/usr/sbin/dropbear", X_OK) != 0 || access("/usr/bin/ssh", X_OK) != 0)
    GTEST_SKIP() << "needs Debian's dropbear-bin and openssh-client";
  const std::string key = NewTenantKey(server_, "acme");
  for (const char* name : {"tenant", "stranger"}) {
    const auto [out, rc] = Shell(fmt::format("ssh-keygen -q -t ed25519 -N '' -C test -f {}/{}", dir_, name));
    ASSERT_EQ(rc, 0) << out;
  }
  const auto cli = [&](const std::string& command) {
    return fmt::format("'{}' lease {} --url {} --key {}", LL_LANDLORD_BIN, command, server_.url(), key);
  };
  const auto [created, rc] = Shell(fmt::format(
      "{} --json --gpus 8 --max-price 2.00 --ssh-key {}/tenant.pub --env GREETING=hello -- "
      "/bin/sh -c 'echo \"$GREETING from $LANDLORD_LEASE_ID\" | tee greeting; echo ready; sleep 1000'",
      cli("create"), dir_));
  ASSERT_EQ(rc, 0) << created;
  const json lease = json::parse(created, nullptr, false);
  ASSERT_TRUE(lease.is_object()) << created;
  const std::string id = lease["id"];
  std::string followed;
  std::thread follow([&] { followed = Shell(cli("logs -f " + id)).first; });

  std::string log;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       std::chrono::steady_clock::now() < until && log.find("ready\n") == std::string::npos;) {
    log = Shell(cli("logs " + id)).first;
  }
  EXPECT_NE(WithoutDropbearLines(log).find(fmt::format("hello from {}\nready\n", id)), std::string::npos) << log;
  // The lease's access: an ssh line on loopback, its host key pinned.
  const json shown = Call(key, "GET", "/v1/leases/" + id);
  ASSERT_TRUE(shown["workload"].contains("ssh")) << shown.dump();
  const std::vector<std::string> argv = shown["workload"]["ssh"]["argv"];
  int port = 0;
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "-p") port = std::stoi(argv[i + 1]);
  }
  ASSERT_GT(port, 0) << shown.dump();
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       std::chrono::steady_clock::now() < until && !Accepts(port);) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  // `setsid`: no terminal to ask a password on, as in a script.
  const auto [inside, ssh_rc] = Shell(fmt::format(
      "setsid -w {} -i {}/tenant -- 'echo \"uid=$(id -u) home=$PWD\"; cat greeting; "
      "echo \"env: $LANDLORD_LEASE_ID $LANDLORD_NODES $CUDA_VISIBLE_DEVICES $LANDLORD_NOTICE_FILE $GREETING\"; "
      "echo \"url=$LANDLORD_METADATA_URL\"' </dev/null",
      cli("ssh " + id), dir_));
  EXPECT_EQ(ssh_rc, 0) << inside;
  EXPECT_NE(inside.find(fmt::format("uid=1000 home=/home/tenant\nhello from {}\n", id)), std::string::npos)
      << "the login lands in the workload's sandbox: " << inside;
  // The login has the workload's environment: the lease, its nodes and GPUs, the notice file,
  // the metadata URL with the lease's token (it answers), the tenant's own variables.
  EXPECT_NE(inside.find(fmt::format("env: {} {} 0,1,2,3,4,5,6,7 /run/landlord/notice.json hello\n", id,
                                    shown["nodes"][0]["node"].get<std::string>())),
            std::string::npos)
      << inside;
  const std::string login_url = LogValue(inside, "url");
  ASSERT_NE(login_url.find("/metadata/"), std::string::npos) << inside;
  EXPECT_EQ(Call("", "GET", login_url.substr(login_url.find("/metadata/")) + "lease")["id"], id);
  const auto [refused, refused_rc] =
      Shell(fmt::format("setsid -w {} -i {}/stranger -- true </dev/null", cli("ssh " + id), dir_));
  EXPECT_EQ(refused_rc, 255) << refused;
  EXPECT_NE(refused.find("Permission denied"), std::string::npos) << refused;

  const auto [released, release_rc] = Shell(cli("release " + id));
  EXPECT_EQ(release_rc, 0) << released;
  follow.join();
  EXPECT_NE(WaitEnded(key, id)["workload"]["state"], "running");
  // dropbear's own lines (logins, refusals) are in the lease's log too: the tenant's auth log.
  const std::string final_log = Shell(cli("logs " + id)).first;
  EXPECT_NE(final_log.find("Pubkey auth succeeded for 'tenant'"), std::string::npos) << final_log;
  EXPECT_EQ(followed, final_log) << "the follower saw all the output and stopped when the workload ended";
  EXPECT_FALSE(Accepts(port)) << "the login went with the workload";
}

// Through the server: a workload cannot read data_dir, another lease's work dir or another
// lease's metadata; a fork bomb and a memory hog are contained; the server and a neighbour's
// workload carry on.
TEST_F(WorkloadTest, IsolatedFromTheServerAndEachOtherAndRunawaysAreContained) {
  const std::string key = NewTenantKey(server_, "acme");
  const std::string other = NewTenantKey(server_, "other");
  json victim = CreateWithWorkload(other, "echo private > mine; echo ready; while :; do sleep 0.05; done", 4);
  const std::string victim_id = victim["id"];
  ASSERT_NE(WaitLog(other, victim_id, "ready\n").find("ready\n"), std::string::npos);
  ASSERT_TRUE(std::ifstream(fmt::format("{}/rt/{}/home/mine", dir_, victim_id)).good()) << "where its work dir is";

  const std::string probe = fmt::format(
      "ls {0}/data && echo LEAK-DATA-DIR; cat {0}/data/* && echo LEAK-DATA; cat {0}/landlord.toml && echo LEAK-CONFIG; "
      "cat {0}/rt/$TARGET/home/mine && echo LEAK-WORKDIR; "
      "base=${{LANDLORD_METADATA_URL%/metadata/*}}; "
      "echo \"theirs=$(curl -s -o /dev/null -w '%{{http_code}}' \"$base/metadata/$TARGET/lease\")\"; "
      "echo \"mine=$(curl -s -o /dev/null -w '%{{http_code}}' \"${{LANDLORD_METADATA_URL}}lease\")\"; "
      "echo \"admin=$(curl -s -o /dev/null -w '%{{http_code}}' \"$base/admin/fleet\")\"; echo probed",
      dir_);
  json prober = CreateWithWorkload(key, probe, 4, {{"TARGET", victim_id}});
  json hog = CreateWithWorkload(
      key, "x=x; i=0; while [ $i -lt 31 ]; do x=$x$x; i=$((i+1)); done; echo ate 1 GiB", 4);

  const json probed = WaitEnded(key, prober["id"]);
  const std::string log = Text(key, "/v1/leases/" + prober["id"].get<std::string>() + "/logs");
  EXPECT_NE(log.find("probed"), std::string::npos) << log;
  EXPECT_EQ(log.find("LEAK"), std::string::npos) << log;
  EXPECT_EQ(log.find("private"), std::string::npos) << log;
  EXPECT_NE(log.find("theirs=404"), std::string::npos) << "a lease id is not a token: " << log;
  EXPECT_NE(log.find("mine=200"), std::string::npos) << log;
  EXPECT_NE(log.find("admin=401"), std::string::npos) << log;
  EXPECT_EQ(probed["workload"]["state"], "exited") << probed.dump();

  const json hogged = WaitEnded(key, hog["id"]);
  EXPECT_NE(hogged["workload"]["exit_code"], 0) << hogged.dump();
  EXPECT_EQ(Text(key, "/v1/leases/" + hog["id"].get<std::string>() + "/logs").find("ate 1 GiB"), std::string::npos);

  // The bomb last (it keeps the CPU busy while it runs): bounded, the server answers and the
  // neighbour still runs.
  json bomb = CreateWithWorkload(key, "b() { b | b & }; b; echo bombing; sleep 1000", 4);
  EXPECT_NE(WaitLog(key, bomb["id"], "\n"), "") << "it is under way (`bombing`, or its shell's `Cannot fork`)";
  int status = 0;
  Text("", "/healthz", &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(Call(key, "GET", "/v1/leases/" + bomb["id"].get<std::string>())["workload"]["state"], "running");
  EXPECT_EQ(Call(other, "GET", "/v1/leases/" + victim_id)["workload"]["state"], "running");
  EXPECT_EQ(Text(other, "/v1/leases/" + victim_id + "/logs"), "ready\n");
  Call(key, "DELETE", "/v1/leases/" + bomb["id"].get<std::string>(), nullptr, &status);
  EXPECT_EQ(status, 200);
  EXPECT_NE(WaitEnded(key, bomb["id"])["workload"]["state"], "running");
  Text("", "/healthz", &status);
  EXPECT_EQ(status, 200);
}

}  // namespace
}  // namespace ll::testing
