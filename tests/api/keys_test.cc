// Regression tests (issue 15): API key management. Keys are listed without secrets, revoked
// (refused at once on `serve`, within the stated 5 s on a standalone gateway), expire on the
// server clock, and survive a restart revoked; the CLI lists and revokes them.
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

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
using Clock = std::chrono::steady_clock;

// What docs/api.md promises: a standalone gateway refuses a revoked key at most this long
// after the control plane does.
constexpr auto kGatewayBound = std::chrono::seconds(5);

class KeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    auto fake = SpawnLandlord(LL_LANDLORD_BIN, {"fake-model", "--listen", "127.0.0.1:0", "--model", "m",
                                                "--tokens-per-s", "0"},
                              kAdminKey);
    ASSERT_TRUE(fake.ok()) << fake.status().ToString();
    fake_ = *fake;
    config_ = TestConfig(dir_, "spot-all",
                         fmt::format("[gateway]\nmeter_flush_ms = 5\n[[gateway.upstreams]]\nmodel = \"m\"\nurl = \"{}\"\n",
                                     fake_.url));
    server_.Start(config_);
    key_ = NewTenantKey(server_, "acme", &tenant_);
    auto r = Admin("POST", "/admin/credits", json{{"tenant_id", tenant_}, {"amount", "10.00"}});
    ASSERT_EQ(r.status, 200) << r.body;
  }
  void TearDown() override {
    if (gateway_.pid > 0) StopServe(gateway_, SIGKILL);
    if (server_.running()) {
      EXPECT_EQ(server_.Stop(), 0);
    }
    if (fake_.pid > 0) StopServe(fake_, SIGKILL);
    std::system(("rm -rf " + dir_).c_str());
  }

  cli::HttpResponse Request(const std::string& key, const std::string& method, const std::string& target,
                            const json& body = nullptr) {
    auto r = server_.Client(key).Request(method, target, body.is_null() ? "" : body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cli::HttpResponse{};
  }
  cli::HttpResponse Admin(const std::string& method, const std::string& target, const json& body = nullptr) {
    return Request(kAdminKey, method, target, body);
  }
  // A key for the tenant from `POST /admin/keys` with `extra` fields: the created object.
  json CreateKey(const json& extra = json::object()) {
    json body = extra;
    body["tenant_id"] = tenant_;
    auto r = Admin("POST", "/admin/keys", body);
    EXPECT_EQ(r.status, 201) << r.body;
    return Json(r);
  }
  static json Chat() {
    return {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2}};
  }
  int ChatStatus(const std::string& key) { return Request(key, "POST", "/v1/chat/completions", Chat()).status; }
  int LeasesStatus(const std::string& key) { return Request(key, "GET", "/v1/leases").status; }
  // The server clock's now.
  Time ServerNow() {
    auto now = ParseUtc(Json(Request(kAdminKey, "GET", "/healthz"))["now"].get<std::string>());
    EXPECT_TRUE(now.ok());
    return now.ok() ? *now : Time{};
  }
  // Runs the `landlord` CLI against the server; returns its exit status, stdout in `*out`.
  int Cli(const std::string& args, std::string* out) {
    const std::string cmd = fmt::format("{} {} --url {} --key {} 2>&1", LL_LANDLORD_BIN, args, server_.url(), kAdminKey);
    FILE* p = ::popen(cmd.c_str(), "r");
    EXPECT_NE(p, nullptr);
    out->clear();
    char buf[4096];
    size_t n = 0;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
    const int st = ::pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  std::string dir_, config_, key_, tenant_;
  ServeChild fake_, gateway_;
  ServeProcess server_;
};

TEST_F(KeysTest, ListShowsNamesAndPrefixesButNoSecret) {
  json created = CreateKey({{"name", "ci runner"}});
  const std::string secret = created["key"];
  EXPECT_EQ(created["name"], "ci runner");
  EXPECT_EQ(created["prefix"], secret.substr(0, 11));
  EXPECT_EQ(created["state"], "active");
  EXPECT_TRUE(created["expires_at"].is_null());

  auto r = Admin("GET", "/admin/keys");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find(secret), std::string::npos) << "the secret is never listed";
  EXPECT_EQ(r.body.find(key_), std::string::npos);
  EXPECT_EQ(r.body.find(kAdminKey), std::string::npos);
  json list = Json(r);
  ASSERT_EQ(list["data"].size(), 3u);  // the admin key, acme's first key, the named one
  EXPECT_TRUE(list["data"][0]["admin"].get<bool>());
  EXPECT_TRUE(list["data"][0]["tenant_id"].is_null());
  const json& named = list["data"][2];
  EXPECT_EQ(named["id"], created["id"]);
  EXPECT_EQ(named["name"], "ci runner");
  EXPECT_EQ(named["tenant_id"], tenant_);
  EXPECT_EQ(named["prefix"], secret.substr(0, 11));
  EXPECT_FALSE(named.contains("key"));
  for (const json& k : list["data"]) EXPECT_FALSE(k.contains("hash"));

  // One tenant's keys, and pages.
  std::string other_tenant;
  NewTenantKey(server_, "other", &other_tenant);
  json acme = Json(Admin("GET", "/admin/keys?tenant_id=" + tenant_));
  ASSERT_EQ(acme["data"].size(), 2u);
  for (const json& k : acme["data"]) EXPECT_EQ(k["tenant_id"], tenant_);
  json page = Json(Admin("GET", "/admin/keys?limit=2"));
  ASSERT_EQ(page["data"].size(), 2u);
  EXPECT_TRUE(page["has_more"].get<bool>());
  json rest = Json(Admin("GET", "/admin/keys?limit=2&after=" + page["data"][1]["id"].get<std::string>()));
  ASSERT_EQ(rest["data"].size(), 2u);
  EXPECT_FALSE(rest["has_more"].get<bool>());
  EXPECT_EQ(rest["data"][1]["tenant_id"], other_tenant);
  EXPECT_EQ(Admin("GET", "/admin/keys?tenant_id=ten_nobody").status, 404);
  EXPECT_EQ(Admin("GET", "/admin/keys?limit=0").status, 400);
  EXPECT_EQ(Request(key_, "GET", "/admin/keys").status, 403);
}

TEST_F(KeysTest, RevokedKeyIsRefusedAtOnceOnServeAndStaysRevokedAfterARestart) {
  ASSERT_EQ(LeasesStatus(key_), 200);
  ASSERT_EQ(ChatStatus(key_), 200);
  const std::string id = Json(Admin("GET", "/admin/keys?tenant_id=" + tenant_))["data"][0]["id"];

  auto r = Admin("DELETE", "/admin/keys/" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  json revoked = Json(r);
  EXPECT_EQ(revoked["state"], "revoked");
  ASSERT_TRUE(revoked["revoked_at"].is_string());
  // The very next requests: the lease API and the in-process model API.
  EXPECT_EQ(LeasesStatus(key_), 401);
  auto chat = Request(key_, "POST", "/v1/chat/completions", Chat());
  EXPECT_EQ(chat.status, 401) << chat.body;
  EXPECT_EQ(Json(chat)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(Admin("POST", "/admin/keys/verify", json{{"key", key_}}).status, 404);

  // Idempotent: the same object again, the first revocation time kept.
  auto again = Admin("DELETE", "/admin/keys/" + id);
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Json(again)["revoked_at"], revoked["revoked_at"]);

  // Durable: still revoked after a restart; another key of the tenant still works.
  const std::string other = CreateKey()["key"];
  ASSERT_EQ(server_.Stop(), 0);
  server_.Start(config_);
  EXPECT_EQ(LeasesStatus(key_), 401);
  EXPECT_EQ(ChatStatus(key_), 401);
  EXPECT_EQ(LeasesStatus(other), 200);
  json listed = Json(Admin("GET", "/admin/keys?tenant_id=" + tenant_))["data"][0];
  EXPECT_EQ(listed["state"], "revoked");
  EXPECT_EQ(listed["revoked_at"], revoked["revoked_at"]);
}

TEST_F(KeysTest, UnknownIdIs404NamingItAndTheAdminKeyCannotBeRevoked) {
  auto r = Admin("DELETE", "/admin/keys/key_999999");
  ASSERT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(Json(r)["error"]["code"], "key_not_found");
  EXPECT_NE(Json(r)["error"]["message"].get<std::string>().find("`key_999999`"), std::string::npos) << r.body;

  const std::string admin_id = Json(Admin("GET", "/admin/keys"))["data"][0]["id"];
  auto refused = Admin("DELETE", "/admin/keys/" + admin_id);
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_EQ(Admin("GET", "/admin/fleet").status, 200);
  EXPECT_EQ(Request(key_, "DELETE", "/admin/keys/" + admin_id).status, 403);
}

TEST_F(KeysTest, BadFieldsAreNamedAndCreateNothing) {
  const size_t before = Json(Admin("GET", "/admin/keys"))["data"].size();
  auto expect_400 = [&](const json& extra, const std::string& param) {
    json body = extra;
    body["tenant_id"] = tenant_;
    auto r = Admin("POST", "/admin/keys", body);
    EXPECT_EQ(r.status, 400) << extra.dump() << " " << r.body;
    EXPECT_EQ(Json(r)["error"]["param"], param) << r.body;
  };
  expect_400({{"name", "line\nbreak"}}, "name");
  expect_400({{"name", "bell\x07"}}, "name");
  expect_400({{"name", "c1 \xC2\x85"}}, "name");
  expect_400({{"name", ""}}, "name");
  expect_400({{"name", std::string(201, 'x')}}, "name");
  expect_400({{"name", 7}}, "name");
  expect_400({{"expires_at", "2001-01-01T00:00:00Z"}}, "expires_at");  // before the server's now
  expect_400({{"expires_at", "tomorrow"}}, "expires_at");
  expect_400({{"expires_in_s", 0}}, "expires_in_s");
  expect_400({{"expires_in_s", "60"}}, "expires_in_s");
  expect_400({{"expires_in_s", 60}, {"expires_at", "2999-01-01T00:00:00Z"}}, "expires_in_s");
  EXPECT_EQ(Json(Admin("GET", "/admin/keys"))["data"].size(), before);
  // A name of 200 bytes with non-ASCII letters is fine.
  EXPECT_EQ(CreateKey({{"name", std::string(198, 'x') + "\xC3\xA9"}})["name"], std::string(198, 'x') + "\xC3\xA9");
}

TEST_F(KeysTest, ExpiredKeyIsRefusedFromItsExpiryOnTheServerClock) {
  // 20 s of server clock is 1 s of wall time (the test config runs it at 20x).
  json brief = CreateKey({{"expires_in_s", 20}});
  json lasting = CreateKey({{"expires_at", FormatUtc(ServerNow() + Duration::Hours(24))}});
  const std::string brief_key = brief["key"];
  auto expires = ParseUtc(brief["expires_at"].get<std::string>());
  ASSERT_TRUE(expires.ok()) << brief.dump();
  const int early = LeasesStatus(brief_key);
  if (ServerNow() < *expires) {
    EXPECT_EQ(early, 200) << "a key works until its expiry";
  }
  // Wait for the promised time on the server's own clock, then no longer.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (ServerNow() < *expires && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GE(ServerNow(), *expires);
  EXPECT_EQ(LeasesStatus(brief_key), 401);
  EXPECT_EQ(ChatStatus(brief_key), 401);
  EXPECT_EQ(LeasesStatus(lasting["key"]), 200);
  json listed = Json(Admin("GET", "/admin/keys?tenant_id=" + tenant_));
  ASSERT_EQ(listed["data"].size(), 3u);
  EXPECT_EQ(listed["data"][1]["state"], "expired");
  EXPECT_EQ(listed["data"][2]["state"], "active");
}

TEST_F(KeysTest, CliListsWithoutSecretsAndRevokes) {
  json created = CreateKey({{"name", "laptop"}});
  const std::string secret = created["key"], id = created["id"];
  std::string out;
  ASSERT_EQ(Cli("admin key list --tenant " + tenant_, &out), 0) << out;
  EXPECT_NE(out.find(id), std::string::npos) << out;
  EXPECT_NE(out.find("laptop"), std::string::npos) << out;
  EXPECT_NE(out.find(secret.substr(0, 11)), std::string::npos) << out;
  EXPECT_EQ(out.find(secret), std::string::npos) << out;
  ASSERT_EQ(Cli("admin key list --json", &out), 0) << out;
  json list = json::parse(out, nullptr, false);
  ASSERT_TRUE(list.is_object()) << out;
  EXPECT_EQ(list["data"].size(), 3u);

  ASSERT_EQ(Cli("admin key revoke " + id, &out), 0) << out;
  EXPECT_NE(out.find("revoked"), std::string::npos) << out;
  EXPECT_EQ(LeasesStatus(secret), 401);
  EXPECT_EQ(Cli("admin key revoke key_999999", &out), 1) << out;
  EXPECT_NE(out.find("key_999999"), std::string::npos) << out;

  ASSERT_EQ(Cli("admin key create --tenant " + tenant_ + " --name ci --expires-in 3600", &out), 0) << out;
  EXPECT_NE(out.find("Expires at:"), std::string::npos) << out;
}

// `landlord gateway` verifies keys through the control plane and caches the answer: a revoked
// key is refused there within the bound docs/api.md states.
TEST_F(KeysTest, StandaloneGatewayRefusesARevokedKeyWithinTheBound) {
  std::ofstream(dir_ + "/gw.toml") << fmt::format(
      "[server]\nlisten = \"127.0.0.1:0\"\n[gateway]\n[[gateway.upstreams]]\nmodel = \"m\"\nurl = \"{}\"\n", fake_.url);
  auto gw = SpawnLandlord(LL_LANDLORD_BIN, {"gateway", "--control-plane", server_.url(), "--config", dir_ + "/gw.toml"},
                          kAdminKey);
  ASSERT_TRUE(gw.ok()) << gw.status().ToString();
  gateway_ = *gw;
  auto url = cli::ParseUrl(gateway_.url);
  ASSERT_TRUE(url.ok());
  auto chat = [&] {
    auto r = cli::HttpClient(*url, key_).Request("POST", "/v1/chat/completions", Chat().dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->status : 0;
  };
  ASSERT_EQ(chat(), 200);  // verified and cached now
  const std::string id = Json(Admin("GET", "/admin/keys?tenant_id=" + tenant_))["data"][0]["id"];
  const auto revoking = Clock::now();
  ASSERT_EQ(Admin("DELETE", "/admin/keys/" + id).status, 200);
  // Within the bound an event loop that cached the key may still admit it (each loop of the
  // gateway has its own cache, so a 401 from one does not end the bound for the others).
  while (Clock::now() - revoking < kGatewayBound) {
    const int status = chat();
    EXPECT_TRUE(status == 200 || status == 401) << status;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Past it, every loop refuses the key (enough requests to reach each of them).
  for (int i = 0; i < 8; ++i) EXPECT_EQ(chat(), 401);
  EXPECT_EQ(StopServe(gateway_, SIGTERM), 0);
}

}  // namespace
}  // namespace ll::testing
