// Regressions of what a new user and an attacker found against `landlord serve` (issue 15):
// each test failed on 7eaa025. A real server process over loopback, raw sockets where a
// client's exact behaviour matters.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "api/serve_test_util.h"

namespace ll::testing {
namespace {

using nlohmann::json;

class HardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    config_ = TestConfig(dir_, "spot-all");
    server_.Start(config_);
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Stop(), 0);
    }
    std::system(("rm -rf " + dir_).c_str());
  }
  cli::HttpResponse Send(const std::string& key, const std::string& method, const std::string& target,
                         const std::string& body = "") {
    auto r = server_.Client(key).Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cli::HttpResponse{};
  }
  void ExpectAlive() {
    auto r = server_.Client("").Request("GET", "/healthz");
    ASSERT_TRUE(r.ok()) << "the server died: " << r.status().ToString();
    EXPECT_EQ(r->status, 200);
  }

  std::string dir_, config_;
  ServeProcess server_;
};

// Runs a shell command; returns its exit status and, in *out, what it printed on stdout.
int RunShell(const std::string& command, std::string* out = nullptr) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  const int st = pclose(p);
  if (out != nullptr) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// 1. A deeply nested body is refused before any DOM is built, on every endpoint that parses
// JSON (it crashed the server with a stack overflow).
TEST_F(HardeningTest, DeeplyNestedJsonIsA400NotACrash) {
  const std::string key = NewTenantKey(server_, "acme");
  const std::string deep = std::string(150'000, '[') + std::string(150'000, ']');
  for (auto [who, target] : {std::pair{key, "/v1/leases"}, std::pair{std::string(kAdminKey), "/admin/tenants"},
                             std::pair{std::string(kAdminKey), "/admin/credits"},
                             std::pair{key, "/v1/chat/completions"}}) {
    auto r = Send(who, "POST", target, deep);
    EXPECT_EQ(r.status, 400) << target << ": " << r.body;
    EXPECT_EQ(Json(r)["error"]["code"], "invalid_json") << target << ": " << r.body;
    ExpectAlive();
  }
  // 64 levels are fine (the parser goes on to say what is wrong with the value).
  auto r = Send(kAdminKey, "POST", "/admin/tenants",
                "{\"name\":" + std::string(63, '[') + std::string(63, ']') + "}");
  EXPECT_EQ(Json(r)["error"]["code"], "invalid_type") << r.body;
}

// 2. One server per data dir: a second one exits with its own status, touching nothing.
TEST_F(HardeningTest, SecondServerOnOneDataDirExitsWithStatus4) {
  auto before = Send(kAdminKey, "GET", "/admin/fleet");
  std::string err_path = dir_ + "/second.err";
  const int status = RunShell(fmt::format("LANDLORD_ADMIN_KEY={} timeout 60 '{}' serve --config '{}' >/dev/null 2>'{}'", kAdminKey,
                                     LL_LANDLORD_BIN, config_, err_path));
  EXPECT_EQ(status, 4);
  const std::string err = ReadFile(err_path);
  EXPECT_NE(err.find("is in use by another landlord serve (pid " + std::to_string(server_.pid()) + ")"),
            std::string::npos)
      << err;
  ExpectAlive();
  // The first server still owns its ids: a tenant it creates is listed once.
  EXPECT_EQ(Send(kAdminKey, "POST", "/admin/tenants", R"({"name":"after"})").status, 201);
}

// 3. Money: the string and number forms obey one set of rules, and sums are checked.
TEST_F(HardeningTest, CreditAmountsAreCappedAndBothFormsObeyOneRule) {
  std::string tenant;
  NewTenantKey(server_, "acme", &tenant);
  auto credit = [&](const std::string& amount_json) {
    return Send(kAdminKey, "POST", "/admin/credits",
                fmt::format(R"({{"tenant_id":"{}","amount":{}}})", tenant, amount_json));
  };
  for (const char* amount : {R"("5000000000000")", "5000000000000", R"("0.1234567")", "0.1234567", "1e-7", "1e300",
                             R"("1000000000.000001")", R"("-1")", "-1"}) {
    auto r = credit(amount);
    EXPECT_EQ(r.status, 400) << amount << ": " << r.body;
    EXPECT_EQ(Json(r)["error"]["param"], "amount") << amount << ": " << r.body;
  }
  ExpectAlive();
  EXPECT_EQ(Json(Send(kAdminKey, "GET", "/v1/balance?tenant_id=" + tenant))["available"], "0.00");
  EXPECT_EQ(credit(R"("1000000000")").status, 200);
  EXPECT_EQ(credit("1000000000").status, 200);
  EXPECT_EQ(credit("0.000001").status, 200);
  EXPECT_EQ(Json(Send(kAdminKey, "GET", "/v1/balance?tenant_id=" + tenant))["available"], "2000000000.000001");
}

// Writes all of `request` to a fresh connection before reading anything (as urllib and most
// SDKs send a body), then reads the answer until the server closes. Returns the answer's text,
// or "" when the connection was reset before an answer came.
std::string SendWholeThenRead(const std::string& address, const std::string& head, size_t body_bytes) {
  const size_t colon = address.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return "connect failed";
  std::string request = head + std::string(body_bytes, 'x');
  bool write_failed = false;
  for (size_t off = 0; off < request.size();) {
    const ssize_t n = send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      write_failed = true;  // EPIPE or a reset: the server stopped reading
      break;
    }
    off += static_cast<size_t>(n);
  }
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<size_t>(n));
  close(fd);
  return write_failed && answer.empty() ? "" : answer;
}

// 4. A body over the limit: the client that sends it whole reads the 413, not a reset.
TEST_F(HardeningTest, ABodyOverTheLimitGetsA413EvenWhenSentWhole) {
  const std::string key = NewTenantKey(server_, "acme");
  for (size_t mib : {2, 8, 32}) {
    const size_t bytes = mib << 20;
    const std::string head = fmt::format(
        "POST /v1/leases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\n\r\n",
        key, bytes);
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::string answer = SendWholeThenRead(server_.address(), head, bytes);
      ASSERT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << mib << " MiB, try " << attempt << ": got `"
                                                     << answer.substr(0, 80) << "`";
      EXPECT_NE(answer.find("body_too_large"), std::string::npos);
    }
  }
  ExpectAlive();
}

// 7. An event's id always carries the same bytes: live, and replayed with Last-Event-ID.
TEST_F(HardeningTest, ReplayedEventsAreTheBytesSentLive) {
  const std::string key = NewTenantKey(server_, "acme");
  auto created = Send(key, "POST", "/v1/leases", R"({"kind":"spot","gpus":8,"max_price_per_gpu_hour":"2.00"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = Json(created)["id"];
  EXPECT_EQ(Send(kAdminKey, "POST", "/admin/internal-jobs", R"({"gpus":32,"duration_s":3600})").status, 201);
  std::map<std::string, std::string> live;  // id → data
  auto c = server_.Client(key);
  ASSERT_TRUE(c.Stream("/v1/leases/" + id + "/events", [&](const cli::SseEvent& e) {
                 live[e.id] = e.data;
                 return true;
               }).ok());
  ASSERT_GE(live.size(), 3u) << "active, reclaim_notice, reclaimed";
  EXPECT_EQ(json::parse(live.begin()->second)["lease"]["state"], "active");
  // From the start, and from every id on: the same bytes for the same id.
  std::vector<std::string> ids;
  for (auto& [k, v] : live) ids.push_back(k);
  for (const std::string& after : {std::string(""), ids.front()}) {
    std::map<std::string, std::string> replay;
    ASSERT_TRUE(c.Stream("/v1/leases/" + id + "/events",
                         [&](const cli::SseEvent& e) {
                           replay[e.id] = e.data;
                           return true;
                         },
                         after)
                    .ok());
    for (auto& [k, v] : replay) EXPECT_EQ(v, live[k]) << "event " << k << " replayed after `" << after << "`";
    EXPECT_EQ(replay.size(), after.empty() ? live.size() : live.size() - 1);
  }
}

// 8. The defaults work from any directory (the default trace resolves against the install prefix
// or, in a build tree, the sources: sim/data_files.h), and a bad config creates nothing.
TEST(HardeningStartup, ServeRunsFromAnyDirectoryAndValidatesBeforeCreating) {
  const std::string dir = TempDir();
  auto child = SpawnLandlord("/bin/sh", {"-c", fmt::format("cd '{}' && exec '{}' serve --listen 127.0.0.1:0", dir,
                                                          LL_LANDLORD_BIN)},
                             kAdminKey);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_EQ(StopServe(*child, SIGTERM), 0);
  struct stat st {};
  EXPECT_EQ(stat((dir + "/landlord-data/landlord.db").c_str(), &st), 0) << "the default data dir, in the cwd";

  std::ofstream(dir + "/bad.toml") << "[server]\ndata_dir = \"" << dir << "/never\"\n[fleet]\ntrace = \"helios:" << dir
                                   << "/no-such-trace\"\n";
  std::string out;
  const int status = RunShell(fmt::format("'{}' serve --config '{}/bad.toml' 2>&1", LL_LANDLORD_BIN, dir), &out);
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("no-such-trace"), std::string::npos) << out;
  EXPECT_NE(stat((dir + "/never").c_str(), &st), 0) << "a refused start created its data dir";
  std::system(("rm -rf " + dir).c_str());
}

// 10. Names without control characters; `--json` commands print errors as JSON.
TEST_F(HardeningTest, ControlCharactersInNamesAndJsonErrorsFromTheCli) {
  for (const char* name : {"a\\u0000b", "a\\r\\nX-Injected: 1", "tab\\there", "\\u007f"}) {
    auto r = Send(kAdminKey, "POST", "/admin/tenants", fmt::format(R"({{"name":"{}"}})", name));
    EXPECT_EQ(r.status, 400) << name << ": " << r.body;
    EXPECT_EQ(Json(r)["error"]["param"], "name") << r.body;
  }
  EXPECT_EQ(Send(kAdminKey, "POST", "/admin/tenants", R"({"name":"Ünïcode Labs"})").status, 201);
  std::string out;
  const int status = RunShell(fmt::format("'{}' lease show lease_nope --json --url {} --key {} 2>/dev/null",
                                     LL_LANDLORD_BIN, server_.url(), kAdminKey),
                         &out);
  EXPECT_NE(status, 0);
  json j = json::parse(out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << "not JSON: " << out;
  EXPECT_EQ(j["error"]["code"], "lease_not_found") << out;
  // An error of the client itself (no server there) is JSON too.
  RunShell(fmt::format("'{}' lease list --json --url http://127.0.0.1:1 --key k 2>/dev/null", LL_LANDLORD_BIN), &out);
  j = json::parse(out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << "not JSON: " << out;
  EXPECT_TRUE(j["error"]["message"].is_string()) << out;
}

}  // namespace
}  // namespace ll::testing
