// The model API end to end over loopback: a real `landlord serve`, real `landlord fake-model`
// replica processes (killed for real in the fault tests), the real HTTP client; billing read
// back from the server's ledger.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "api/serve_test_util.h"
#include "core/money.h"

namespace ll::testing {
namespace {

using nlohmann::json;

// A `landlord fake-model` process.
class FakeModelProcess {
 public:
  ~FakeModelProcess() { Kill9(); }
  void Start(std::vector<std::string> args) {
    args.insert(args.begin(), {"fake-model", "--listen", "127.0.0.1:0"});
    auto c = SpawnLandlord(LL_LANDLORD_BIN, args, kAdminKey);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    child_ = *c;
  }
  void Kill9() {
    if (child_.pid > 0) StopServe(child_, SIGKILL);
  }
  const std::string& url() const { return child_.url; }

 private:
  ServeChild child_;
};

class GatewayTest : public ::testing::Test {
 protected:
  // `gateway` is the [gateway] table's body (upstreams and limits).
  void StartServer(const std::string& gateway) {
    dir_ = TempDir();
    server_.Start(TestConfig(dir_, "spot-all", "[gateway]\nmeter_flush_ms = 5\n" + gateway));
    key_ = NewTenantKey(server_, "acme", &tenant_);
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Stop(), 0);
    }
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string Upstream(const FakeModelProcess& f, const std::string& model = "m") {
    return fmt::format("[[gateway.upstreams]]\nmodel = \"{}\"\nurl = \"{}\"\n", model, f.url());
  }
  void Credit(const std::string& amount) {
    auto r = server_.Client(kAdminKey).Request("POST", "/admin/credits", json{{"tenant_id", tenant_}, {"amount", amount}}.dump());
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->status, 200) << r->body;
  }
  cli::HttpResponse Post(const std::string& path, const json& body, const std::string& key = "") {
    auto r = server_.Client(key.empty() ? key_ : key).Request("POST", path, body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cli::HttpResponse{};
  }
  static json Chat(int max_tokens, bool stream, const std::string& text = "hello") {
    json b = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", text}}}}, {"max_tokens", max_tokens}};
    if (stream) b["stream"] = true;
    return b;
  }
  json Get(const std::string& target, const std::string& key = "") const {
    auto r = server_.Client(key.empty() ? key_ : key).Request("GET", target);
    EXPECT_TRUE(r.ok());
    return r.ok() ? Json(*r) : json();
  }
  // The tenant's token usage records, once the group commit has run.
  std::vector<json> TokenUsage() {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::vector<json> out;
    json all = Get("/v1/usage");
    for (const json& u : all["data"]) {
      if (u["source"] == "tokens") out.push_back(u);
    }
    if (out.empty()) std::fprintf(stderr, "usage: %s\n", all.dump().c_str());
    return out;
  }

  std::string dir_, key_, tenant_;
  ServeProcess server_;
};

// Data events of an SSE body (the text after "data: ").
std::vector<std::string> DataEvents(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    size_t end = body.find("\n\n", pos);
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

TEST_F(GatewayTest, ReplicaFailingBeforeTheFirstByteIsRetriedElsewhereAndBilledOnce) {
  FakeModelProcess bad, good;
  bad.Start({"--model", "m", "--name", "bad", "--crash-before-first-byte"});
  good.Start({"--model", "m", "--name", "good", "--tokens-per-s", "0"});
  StartServer("affinity = false\n" + Upstream(bad) + Upstream(good));
  Credit("1.00");
  // The first request reaches `bad`, which dies reading it; the rest find it refusing
  // connections. Every one is answered by `good`, streamed or not.
  for (int i = 0; i < 6; ++i) {
    cli::HttpResponse r = Post("/v1/chat/completions", Chat(4, i % 2 == 1));
    ASSERT_EQ(r.status, 200) << r.body;
    if (i % 2 == 1) {
      auto events = DataEvents(r.body);
      ASSERT_FALSE(events.empty());
      EXPECT_EQ(events.back(), "[DONE]");
      EXPECT_EQ(events.size(), 5u) << r.body;  // 4 tokens and [DONE]; no usage chunk (not asked)
    } else {
      EXPECT_EQ(Json(r)["usage"]["completion_tokens"], 4);
    }
  }
  std::vector<json> usage = TokenUsage();
  ASSERT_EQ(usage.size(), 12u);  // 6 requests × (input, output), each once
  int64_t total = 0, out_tokens = 0;
  for (const json& u : usage) {
    total += u["amount_micros"].get<int64_t>();
    if (u["kind"] == "output_tokens") out_tokens += u["quantity"].get<int64_t>();
  }
  EXPECT_EQ(out_tokens, 24);
  json balance = Get("/v1/balance");
  EXPECT_EQ(balance["charged"], FormatMoney(Money::Micros(total)));
  EXPECT_EQ(balance["held"], "0.00");
  // The failure shows in the metrics.
  auto m = server_.Client("").Request("GET", "/metrics");
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->body.find("landlord_gateway_retries_total "), std::string::npos);
  EXPECT_EQ(m->body.find("landlord_gateway_retries_total 0\n"), std::string::npos);
}

TEST_F(GatewayTest, MidStreamFailureEndsWithAnErrorEventAndOnlyDeliveredTokensAreBilled) {
  FakeModelProcess fake;
  fake.Start({"--model", "m", "--tokens-per-s", "0", "--crash-after-tokens", "3"});
  StartServer(Upstream(fake));
  Credit("1.00");
  json body = Chat(10, true);
  body["stream_options"] = {{"include_usage", true}};
  cli::HttpResponse r = Post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200);
  auto events = DataEvents(r.body);
  ASSERT_EQ(events.size(), 4u) << r.body;  // three tokens, then the error
  json err = json::parse(events.back());
  EXPECT_EQ(err["error"]["code"], "upstream_failed") << r.body;
  EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
  std::vector<json> usage = TokenUsage();
  ASSERT_EQ(usage.size(), 2u);
  for (const json& u : usage) {
    if (u["kind"] == "output_tokens") {
      EXPECT_EQ(u["quantity"], 3);
    }
  }
  // With its only replica dead the model is unavailable: 503, nothing billed.
  cli::HttpResponse again = Post("/v1/chat/completions", Chat(2, false));
  EXPECT_EQ(again.status, 503) << again.body;
  EXPECT_EQ(TokenUsage().size(), 2u);
}

TEST_F(GatewayTest, ReplicaKilledWithSigkillMidStream) {
  FakeModelProcess fake;
  fake.Start({"--model", "m", "--tokens-per-s", "20"});
  StartServer(Upstream(fake));
  Credit("1.00");
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    fake.Kill9();
  });
  cli::HttpResponse r = Post("/v1/chat/completions", Chat(100, true));  // 5 s of tokens
  killer.join();
  auto events = DataEvents(r.body);
  ASSERT_GE(events.size(), 2u) << r.body;
  EXPECT_EQ(json::parse(events.back())["error"]["code"], "upstream_failed") << r.body;
  const int64_t delivered = static_cast<int64_t>(events.size()) - 1;
  for (const json& u : TokenUsage()) {
    if (u["kind"] == "output_tokens") {
      EXPECT_EQ(u["quantity"], delivered);
    }
  }
}

TEST_F(GatewayTest, KeysLimitsBudgetsAndBadInput) {
  FakeModelProcess fake;
  fake.Start({"--model", "m", "--tokens-per-s", "0"});
  StartServer("rpm = 3\ntpm = 1000\n" + Upstream(fake));
  // Keys: none, wrong, the admin's.
  for (const std::string& k : {std::string("ll_wrong"), std::string(kAdminKey)}) {
    cli::HttpResponse r = Post("/v1/chat/completions", Chat(4, false), k);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(Json(r)["error"]["code"], "invalid_api_key");
  }
  // No balance: insufficient_quota, and SDKs are told not to retry.
  cli::HttpResponse broke = Post("/v1/chat/completions", Chat(4, false));
  EXPECT_EQ(broke.status, 429);
  EXPECT_EQ(Json(broke)["error"]["code"], "insufficient_quota");
  Credit("1.00");
  // Bad input names the field and costs nothing.
  cli::HttpResponse bad = Post("/v1/chat/completions", json{{"model", "m"}, {"messages", "hi"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Json(bad)["error"]["param"], "messages");
  EXPECT_EQ(Post("/v1/chat/completions", json{{"model", "nope"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}).status, 404);
  // A request alone over the token limit can never pass.
  cli::HttpResponse huge = Post("/v1/chat/completions", Chat(5000, false));
  EXPECT_EQ(huge.status, 429);
  // Three requests a minute: the fourth waits.
  int ok = 0, limited = 0;
  for (int i = 0; i < 4; ++i) {
    cli::HttpResponse r = Post("/v1/chat/completions", Chat(4, false));
    ok += r.status == 200;
    limited += r.status == 429 && Json(r)["error"]["code"] == "rate_limit_exceeded";
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(limited, 1);
  // A key of its own limits: one request a minute, whatever the server's default.
  auto k = server_.Client(kAdminKey).Request("POST", "/admin/keys", json{{"tenant_id", tenant_}, {"rpm", 1}}.dump());
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->status, 201) << k->body;
  const std::string slow = Json(*k)["key"];
  EXPECT_EQ(Post("/v1/chat/completions", Chat(4, false), slow).status, 200);
  cli::HttpResponse second = Post("/v1/chat/completions", Chat(4, false), slow);
  EXPECT_EQ(second.status, 429);
  EXPECT_EQ(Json(second)["error"]["type"], "requests");
  auto bad_limit = server_.Client(kAdminKey).Request("POST", "/admin/keys", json{{"tenant_id", tenant_}, {"rpm", -1}}.dump());
  ASSERT_TRUE(bad_limit.ok());
  EXPECT_EQ(bad_limit->status, 400);
  json balance = Get("/v1/balance");
  EXPECT_EQ(balance["held"], "0.00");
  EXPECT_EQ(TokenUsage().size(), 8u);  // only the four that ran
}

// Replicas hold GPUs of the fleet as inference holders: the owner's demand reclaims them
// first; the notice drains them (in-flight requests finish, new ones go elsewhere or get 503)
// and they stop at reclaim_at.
TEST_F(GatewayTest, SimulatedReplicasArePlacedOnTheFleetAndDrainedOnReclaim) {
  StartServer(
      "[[gateway.sim_models]]\nmodel = \"m\"\nreplicas = 2\ngpus_per_replica = 8\ntokens_per_s = 20\n"
      "first_token_ms = 0\n");
  Credit("1.00");
  auto inference = [&] {
    std::set<std::string> replicas;
    const json fleet = Get("/admin/fleet", kAdminKey);
    for (const json& n : fleet["nodes"]) {
      for (const json& h : n["holders"]) {
        if (h["class"] == "inference") replicas.insert(h["replica"].get<std::string>() + "/" + h["state"].get<std::string>());
      }
    }
    return replicas;
  };
  ASSERT_EQ(inference().size(), 2u) << Get("/admin/fleet", kAdminKey).dump();
  for (const std::string& r : inference()) EXPECT_NE(r.find("/serving"), std::string::npos) << r;
  EXPECT_EQ(Post("/v1/chat/completions", Chat(2, false)).status, 200);
  // A stream of 10 tokens (0.5 s) is in flight when the owner takes the whole fleet back.
  cli::HttpResponse streamed;
  std::thread client([&] { streamed = Post("/v1/chat/completions", Chat(10, true)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int status = 0;
  auto r = server_.Client(kAdminKey).Request("POST", "/admin/internal-jobs", json{{"gpus", 24}, {"duration_s", 3600}}.dump());
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 201) << r->body;
  (void)status;
  // Noticed (20 s of server time: 1 s of wall time): draining, no new requests.
  for (const std::string& rep : inference()) EXPECT_NE(rep.find("/draining"), std::string::npos) << rep;
  cli::HttpResponse refused = Post("/v1/chat/completions", Chat(2, false));
  EXPECT_EQ(refused.status, 503) << refused.body;
  client.join();
  ASSERT_EQ(streamed.status, 200);
  EXPECT_EQ(DataEvents(streamed.body).back(), "[DONE]") << "the in-flight stream finished within the notice";
  // At reclaim_at the replicas stop and their GPUs go to the owner.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(inference().empty());
  EXPECT_EQ(Post("/v1/chat/completions", Chat(2, false)).status, 503);
  // Billed: the first request and the stream, once each.
  EXPECT_EQ(TokenUsage().size(), 4u);
}

// A replica that is only slow (no header in first_byte_timeout_s) gets 504, not a retry that
// would generate the answer again elsewhere; nothing is billed and the hold goes.
TEST_F(GatewayTest, ASlowReplicaAnswers504WithoutRetry) {
  FakeModelProcess slow, other;
  slow.Start({"--model", "m", "--name", "slow", "--first-token-ms", "3000"});
  other.Start({"--model", "m", "--name", "other", "--first-token-ms", "3000"});
  StartServer("first_byte_timeout_s = 1\naffinity = false\n" + Upstream(slow) + Upstream(other));
  Credit("1.00");
  const auto t0 = std::chrono::steady_clock::now();
  cli::HttpResponse r = Post("/v1/chat/completions", Chat(4, false));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_EQ(Json(r)["error"]["code"], "upstream_timeout");
  EXPECT_LT(waited, std::chrono::milliseconds(2500)) << "one attempt, not one per replica";
  EXPECT_EQ(Get("/v1/balance")["held"], "0.00");
  EXPECT_TRUE(TokenUsage().empty());
}

// `landlord gateway`: the model API in its own process, against the control plane's ledger
// over HTTP (keys, holds, settlements): billed once on the control plane.
TEST_F(GatewayTest, StandaloneGatewayMetersIntoTheControlPlane) {
  FakeModelProcess fake;
  fake.Start({"--model", "m", "--tokens-per-s", "0"});
  StartServer("enabled = false\n");
  Credit("1.00");
  std::ofstream(dir_ + "/gw.toml") << fmt::format(
      "[server]\nlisten = \"127.0.0.1:0\"\n[gateway]\nslice_idle_ms = 200\n[[gateway.upstreams]]\nmodel = \"m\"\n"
      "url = \"{}\"\n",
      fake.url());
  auto gw = SpawnLandlord(LL_LANDLORD_BIN, {"gateway", "--control-plane", server_.url(), "--config", dir_ + "/gw.toml"},
                          kAdminKey);
  ASSERT_TRUE(gw.ok()) << gw.status().ToString();
  auto url = cli::ParseUrl(gw->url);
  ASSERT_TRUE(url.ok());
  auto post = [&](const std::string& key, const json& body) {
    cli::HttpClient c(*url, key);
    auto r = c.Request("POST", "/v1/chat/completions", body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cli::HttpResponse{};
  };
  cli::HttpResponse plain = post(key_, Chat(4, false));
  ASSERT_EQ(plain.status, 200) << plain.body;
  cli::HttpResponse streamed = post(key_, Chat(3, true));
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_EQ(DataEvents(streamed.body).back(), "[DONE]");
  EXPECT_EQ(post("ll_wrong", Chat(4, false)).status, 401);
  EXPECT_EQ(post(kAdminKey, Chat(4, false)).status, 401);
  std::string poor_tenant;
  const std::string poor = NewTenantKey(server_, "poor", &poor_tenant);
  cli::HttpResponse broke = post(poor, Chat(4, false));
  EXPECT_EQ(broke.status, 429);
  EXPECT_EQ(Json(broke)["error"]["code"], "insufficient_quota");
  // Settlements reach the control plane in the background: wait for them.
  std::vector<json> usage;
  for (int i = 0; i < 100 && usage.size() < 4; ++i) usage = TokenUsage();
  ASSERT_EQ(usage.size(), 4u);
  int64_t total = 0;
  for (const json& u : usage) total += u["amount_micros"].get<int64_t>();
  json balance = Get("/v1/balance");
  EXPECT_EQ(balance["charged"], FormatMoney(Money::Micros(total)));
  // The gateway's slice of the balance goes back once it has been idle for `slice_idle_ms`.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (balance["held"] != "0.00" && std::chrono::steady_clock::now() < deadline) balance = Get("/v1/balance");
  EXPECT_EQ(balance["held"], "0.00");
  EXPECT_EQ(balance["charged"], FormatMoney(Money::Micros(total)));
  EXPECT_EQ(StopServe(*gw, SIGTERM), 0);
}

}  // namespace
}  // namespace ll::testing
