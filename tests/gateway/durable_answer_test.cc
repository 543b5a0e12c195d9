// Regression tests (issue 15): an answered model request is billed, whatever instant the server
// dies at. A real `landlord serve` under concurrent chat load (streamed and not) is killed with
// SIGKILL at random moments and restarted on the same data dir, again and again; every request
// that got a whole 200, or a stream that reached `[DONE]`, must then be billed exactly once.
// (Group commit used to answer first and commit up to `meter_flush_ms` later: about 1% of the
// answers before each kill were lost from billing.)
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "api/serve_test_util.h"

namespace ll::testing {
namespace {

using nlohmann::json;

constexpr int kKills = 12;
constexpr int kClients = 12;

// Requests answered to a client: the request id of every whole 200 and of every stream that
// reached `[DONE]`.
struct Answered {
  std::mutex mu;
  std::vector<std::string> ids;
  int64_t plain = 0, streamed = 0;
};

// One client: chats until `stop`, streamed and not (with and without the usage chunk).
void ChatLoop(const ServeProcess& server, const std::string& key, int c, const std::atomic<bool>& stop,
              Answered* answered) {
  auto client = server.Client(key);
  for (int64_t i = c; !stop; ++i) {
    json body = {{"model", "m"},
                 {"messages", {{{"role", "user"}, {"content", fmt::format("client {} request {}", c, i)}}}},
                 {"max_tokens", 4}};
    const bool stream = i % 2 == 1;
    if (stream) body["stream"] = true;
    if (i % 4 == 1) body["stream_options"] = {{"include_usage", true}};
    auto r = client.Request("POST", "/v1/chat/completions", body.dump());
    if (!r.ok()) {  // the server died under it: a new connection for the next one
      client = server.Client(key);
      continue;
    }
    if (r->status != 200) continue;
    const bool whole = stream ? r->body.ends_with("data: [DONE]\n\n") : Json(*r).contains("usage");
    auto id = r->headers.find("x-request-id");
    if (!whole || id == r->headers.end()) continue;
    std::lock_guard<std::mutex> lock(answered->mu);
    answered->ids.push_back(id->second);
    ++(stream ? answered->streamed : answered->plain);
  }
}

// Billed token requests: request id → the usage keys' attempts billed for it (`<id>:<attempt>`),
// from every period's usage pages.
std::map<std::string, std::set<std::string>> Billed(const ServeProcess& server, const std::string& key) {
  std::map<std::string, std::set<std::string>> out;
  auto client = server.Client(key);
  auto invoices = client.Request("GET", "/v1/invoices");
  EXPECT_TRUE(invoices.ok());
  if (!invoices.ok()) return out;
  const json periods = Json(*invoices);
  for (const json& inv : periods["data"]) {
    std::string after;
    for (;;) {
      auto page = client.Request("GET", fmt::format("/v1/usage?period={}&limit=10000{}", inv["period"].get<std::string>(),
                                                    after.empty() ? "" : "&after=" + after));
      EXPECT_TRUE(page.ok());
      if (!page.ok()) return out;
      const json j = Json(*page);
      for (const json& u : j["data"]) {
        if (u["source"] != "tokens" || u["kind"] != "input_tokens") continue;
        const std::string k = u["key"];  // req_…:<attempt>/in
        const std::string attempt = k.substr(0, k.rfind('/'));
        out[attempt.substr(0, attempt.rfind(':'))].insert(attempt);
      }
      if (!j.value("has_more", false)) break;
      after = j["next"].is_string() ? j["next"].get<std::string>() : j["next"].dump();
    }
  }
  return out;
}

TEST(DurableAnswer, KillDuringChatLoadLosesNoAnsweredRequestFromBilling) {
  const std::string dir = TempDir();
  // Replicas inside the server (they die with it); a short, steady stream of tokens.
  const std::string config = TestConfig(dir, "spot-all",
                                        "[gateway]\nmeter_flush_ms = 10\nrpm = 0\ntpm = 0\n"
                                        "[[gateway.sim_models]]\nmodel = \"m\"\nreplicas = 2\ngpus_per_replica = 0\n"
                                        "tokens_per_s = 2000\nfirst_token_ms = 1\n");
  ServeProcess server;
  server.Start(config);
  std::string tenant;
  const std::string key = NewTenantKey(server, "acme", &tenant);
  auto credit = server.Client(kAdminKey).Request("POST", "/admin/credits",
                                                 json{{"tenant_id", tenant}, {"amount", "100000.00"}}.dump());
  ASSERT_TRUE(credit.ok());
  ASSERT_EQ(credit->status, 200) << credit->body;

  std::mt19937 rng(std::random_device{}());
  Answered answered;
  int64_t lost_total = 0;
  for (int kill = 0; kill < kKills; ++kill) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) clients.emplace_back(ChatLoop, std::cref(server), key, c, std::cref(stop), &answered);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(250, 600)(rng)));
    server.Kill9();
    stop = true;
    for (auto& t : clients) t.join();
    server.Start(config);
    if (HasFatalFailure()) return;

    const auto billed = Billed(server, key);
    std::lock_guard<std::mutex> lock(answered.mu);
    std::vector<std::string> lost, twice;
    for (const std::string& id : answered.ids) {
      auto it = billed.find(id);
      if (it == billed.end()) lost.push_back(id);
    }
    for (const auto& [id, attempts] : billed) {
      if (attempts.size() != 1) twice.push_back(id);
    }
    lost_total = static_cast<int64_t>(lost.size());
    EXPECT_TRUE(lost.empty()) << "after kill " << kill + 1 << ": " << lost.size() << " of " << answered.ids.size()
                              << " answered requests are not billed, e.g. " << lost.front();
    EXPECT_TRUE(twice.empty()) << "billed more than once: " << twice.front();
    std::fprintf(stderr, "kill %d: %zu answered so far (%lld plain, %lld streamed), %zu billed, %zu not billed\n",
                 kill + 1, answered.ids.size(), static_cast<long long>(answered.plain),
                 static_cast<long long>(answered.streamed), billed.size(), lost.size());
  }
  EXPECT_EQ(lost_total, 0);
  // Enough answers around each kill for a 1% loss to show.
  EXPECT_GT(answered.ids.size(), static_cast<size_t>(kKills * 100));
  EXPECT_EQ(server.Stop(), 0);
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace ll::testing
