// Soak: bounded load on the model API over loopback for LL_SOAK_SECONDS (default 300), with
// plain, streamed and embedding requests from several keep-alive clients. The server's RSS
// must stay flat after warm-up, no request may fail, and every request is billed once.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "api/serve_test_util.h"

namespace ll::testing {
namespace {

using nlohmann::json;

int64_t RssKb(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST(GatewaySoak, RssFlatNoErrorsBilledOnce) {
  const char* env = std::getenv("LL_SOAK_SECONDS");
  const int seconds = env != nullptr ? std::atoi(env) : 300;
  ASSERT_GE(seconds, 20);
  const std::string dir = TempDir();
  auto fake = SpawnLandlord(LL_LANDLORD_BIN, {"fake-model", "--listen", "127.0.0.1:0", "--model", "m", "--tokens-per-s", "0"}, kAdminKey);
  ASSERT_TRUE(fake.ok()) << fake.status().ToString();
  ServeProcess server;
  server.Start(TestConfig(dir, "spot-all",
                          fmt::format("[gateway]\nmeter_flush_ms = 10\nrpm = 1000000\ntpm = 1000000000\n"
                                      "[[gateway.upstreams]]\nmodel = \"m\"\nurl = \"{}\"\n",
                                      fake->url)));
  std::string tenant;
  const std::string key = NewTenantKey(server, "soak", &tenant);
  auto credit = server.Client(kAdminKey).Request("POST", "/admin/credits", json{{"tenant_id", tenant}, {"amount", "100000.00"}}.dump());
  ASSERT_TRUE(credit.ok());
  ASSERT_EQ(credit->status, 200);

  // Four clients at about 10 requests/s each: bounded, well under what one core serves.
  std::atomic<int64_t> ok{0}, errors{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::string first_error;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      auto client = server.Client(key);
      const json chat = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", fmt::format("soak {}", c)}}}}, {"max_tokens", 16}};
      json stream = chat;
      stream["stream"] = true;
      stream["stream_options"] = {{"include_usage", true}};
      const json embed = {{"model", "m"}, {"input", {"a", "b"}}};
      for (int64_t i = 0; !stop; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const bool is_embed = i % 3 == 2;
        auto r = client.Request("POST", is_embed ? "/v1/embeddings" : "/v1/chat/completions",
                                (i % 3 == 0 ? chat : i % 3 == 1 ? stream : embed).dump());
        const bool good = r.ok() && r->status == 200 && (i % 3 != 1 || r->body.find("[DONE]") != std::string::npos);
        (good ? ok : errors)++;
        if (!good) {
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.empty()) first_error = r.ok() ? fmt::format("{} {}", r->status, r->body) : r.status().ToString();
        }
        std::this_thread::sleep_until(t0 + std::chrono::milliseconds(100));
      }
    });
  }
  // RSS after a minute's warm-up (or a fifth of a short run), then every few seconds.
  const auto start = std::chrono::steady_clock::now();
  const int warm = std::min(60, seconds / 5);
  int64_t warm_rss = -1, max_rss = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(seconds)) {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const int64_t rss = RssKb(server.pid());
    ASSERT_GT(rss, 0);
    if (std::chrono::steady_clock::now() - start >= std::chrono::seconds(warm)) {
      if (warm_rss < 0) warm_rss = rss;
      max_rss = std::max(max_rss, rss);
    }
  }
  stop = true;
  for (auto& t : clients) t.join();
  std::fprintf(stderr, "soak: %d s, %ld requests, %ld errors, RSS %ld kB after warm-up, max %ld kB\n", seconds,
               static_cast<long>(ok.load()), static_cast<long>(errors.load()), static_cast<long>(warm_rss),
               static_cast<long>(max_rss));
  EXPECT_EQ(errors.load(), 0) << first_error;
  EXPECT_GT(ok.load(), seconds * 20);
  // Flat: within 10% (and 4 MiB of allocator slack) of the RSS after warm-up.
  EXPECT_LE(max_rss, warm_rss + warm_rss / 10 + 4096) << "RSS grew under steady load";
  // Billed once: two usage records per request.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto client = server.Client(key);
  int64_t records = 0;
  std::string after;
  for (;;) {
    auto r = client.Request("GET", "/v1/usage?limit=10000" + (after.empty() ? "" : "&after=" + after));
    ASSERT_TRUE(r.ok());
    json page = Json(*r);
    records += static_cast<int64_t>(page["data"].size());
    if (!page.value("has_more", false)) break;
    after = page["next"].get<std::string>();
  }
  EXPECT_EQ(records, 2 * ok.load());
  auto balance = client.Request("GET", "/v1/balance");
  ASSERT_TRUE(balance.ok());
  EXPECT_EQ(Json(*balance)["held"], "0.00");
  EXPECT_EQ(server.Stop(), 0);
  StopServe(*fake, SIGKILL);
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace ll::testing
