// Engine replicas (gateway/engine_replicas.h) with a real llama.cpp `llama-server` on the
// random-weight model: started, ready on /health, answering, stopped; a server that cannot
// load its model fails once. Run by tests/engine/run.sh, which builds the server and the model
// (LLAMA_SERVER, LLAMA_MODEL); skipped without them.
#include "gateway/engine_replicas.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/http_client.h"
#include "core/clock.h"
#include "gateway/gateway.h"

namespace ll::gateway {
namespace {

using nlohmann::json;

struct Events {
  std::string ready_id, host, port, failed_id, why, down_why;
  int ready = 0, failed = 0, down = 0;
};

class EngineReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* server = std::getenv("LLAMA_SERVER");
    const char* model = std::getenv("LLAMA_MODEL");
    if (server == nullptr || model == nullptr) GTEST_SKIP() << "LLAMA_SERVER and LLAMA_MODEL unset (tests/engine/run.sh)";
    config_.server = server;
    config_.model_path = model;
    config_.args = {"-c", "1024", "-np", "1"};
    dir_ = std::filesystem::temp_directory_path() / ("landlord-engine-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    config_.log_dir = dir_.string();
  }
  void TearDown() override {
    engines_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  EngineReplicas& Engines() {
    if (!engines_) {
      engines_ = std::make_unique<EngineReplicas>(
          ioc_, EngineReplicas::Callbacks{
                    .ready = [this](const std::string& id, const std::string& host, const std::string& port) {
                      ++ev_.ready;
                      ev_.ready_id = id;
                      ev_.host = host;
                      ev_.port = port;
                    },
                    .failed = [this](const std::string& id, const std::string& why) {
                      ++ev_.failed;
                      ev_.failed_id = id;
                      ev_.why = why;
                    },
                    .down = [this](const std::string&, const std::string& why) {
                      ++ev_.down;
                      ev_.down_why = why;
                    }},
          options_);
    }
    return *engines_;
  }
  // Runs the io_context until `done` or 60 s.
  template <typename F>
  bool RunUntil(F done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      ioc_.run_for(std::chrono::milliseconds(50));
      ioc_.restart();
    }
    return done();
  }

  boost::asio::io_context ioc_;
  EngineReplicasOptions options_;
  EngineConfig config_;
  std::filesystem::path dir_;
  Events ev_;
  std::unique_ptr<EngineReplicas> engines_;
};

TEST_F(EngineReplicasTest, StartsReadyOnHealthServesAndStops) {
  ASSERT_TRUE(Engines().Start("rep_engine1", config_).ok());
  EXPECT_EQ(Engines().state("rep_engine1"), EngineReplicas::State::kLoading);
  const pid_t pid = Engines().pid("rep_engine1");
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(RunUntil([&] { return ev_.ready > 0 || ev_.failed > 0; })) << "neither ready nor failed in 60 s";
  ASSERT_EQ(ev_.failed, 0) << ev_.why;
  EXPECT_EQ(ev_.ready_id, "rep_engine1");
  EXPECT_EQ(ev_.host, "127.0.0.1");
  EXPECT_EQ(Engines().state("rep_engine1"), EngineReplicas::State::kReady);

  auto url = cli::ParseUrl("http://" + ev_.host + ":" + ev_.port);
  ASSERT_TRUE(url.ok());
  cli::HttpClient client(*url, "");
  auto health = client.Request("GET", "/health");
  ASSERT_TRUE(health.ok()) << health.status().message();
  EXPECT_EQ(health->status, 200);
  const json body = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 3}};
  auto answer = client.Request("POST", "/v1/chat/completions", body.dump());
  ASSERT_TRUE(answer.ok()) << answer.status().message();
  ASSERT_EQ(answer->status, 200) << answer->body;
  EXPECT_EQ(json::parse(answer->body)["usage"]["completion_tokens"], 3);

  Engines().Stop("rep_engine1");
  EXPECT_EQ(Engines().state("rep_engine1"), EngineReplicas::State::kGone);
  // Reaped after SIGTERM: the pid is gone (kill(pid, 0) fails).
  EXPECT_TRUE(RunUntil([&] { return ::kill(pid, 0) != 0; })) << "llama-server still running after Stop";
  EXPECT_EQ(ev_.failed, 0) << "no callback after Stop";
  EXPECT_TRUE(std::filesystem::file_size(dir_ / "rep_engine1.log") > 0);
}

// Supervision: a ready server SIGKILLed is reported down and restarted after the backoff on a
// new port, ready again (its /health answers 200 there), and counted; a second crash in a row
// waits twice as long.
TEST_F(EngineReplicasTest, AServerKilledWhileServingIsRestartedWithBackoff) {
  options_.restart_backoff = Duration::Millis(200);
  ASSERT_TRUE(Engines().Start("rep_engine1", config_).ok());
  ASSERT_TRUE(RunUntil([&] { return ev_.ready > 0 || ev_.failed > 0; })) << "neither ready nor failed in 60 s";
  ASSERT_EQ(ev_.failed, 0) << ev_.why;
  const pid_t first = Engines().pid("rep_engine1");
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(RunUntil([&] { return ev_.down > 0; })) << "no down reported";
  EXPECT_NE(ev_.down_why.find("exited (signal 9) while serving; restart 1 in 200 ms"), std::string::npos)
      << ev_.down_why;
  EXPECT_EQ(Engines().state("rep_engine1"), EngineReplicas::State::kRestarting);
  EXPECT_EQ(Engines().pid("rep_engine1"), -1);
  EXPECT_EQ(Engines().restarts("rep_engine1"), 1);
  ASSERT_TRUE(RunUntil([&] { return ev_.ready == 2; })) << "not ready again: " << ev_.down_why;
  EXPECT_EQ(Engines().state("rep_engine1"), EngineReplicas::State::kReady);
  const pid_t second = Engines().pid("rep_engine1");
  EXPECT_GT(second, 0);
  EXPECT_NE(second, first);
  auto url = cli::ParseUrl("http://" + ev_.host + ":" + ev_.port);
  ASSERT_TRUE(url.ok());
  auto health = cli::HttpClient(*url, "").Request("GET", "/health");
  ASSERT_TRUE(health.ok()) << health.status().message();
  EXPECT_EQ(health->status, 200);

  // Again, before it served `restart_reset`: the backoff doubles.
  ASSERT_EQ(::kill(second, SIGKILL), 0);
  ASSERT_TRUE(RunUntil([&] { return ev_.down == 2; })) << "no second down reported";
  EXPECT_NE(ev_.down_why.find("restart 2 in 400 ms"), std::string::npos) << ev_.down_why;
  EXPECT_EQ(ev_.failed, 0) << ev_.why;
  // Stopped while it waits for its restart: forgotten (no server to start, none to signal).
  Engines().Stop("rep_engine1");
  EXPECT_EQ(Engines().state("rep_engine1"), EngineReplicas::State::kGone);
  EXPECT_EQ(Engines().size(), 0u);
}

TEST_F(EngineReplicasTest, AServerThatCannotLoadItsModelFailsOnce) {
  const std::filesystem::path bad = dir_ / "not-a-model.gguf";
  std::ofstream(bad) << "not a gguf file";
  config_.model_path = bad.string();
  ASSERT_TRUE(Engines().Start("rep_bad", config_).ok());
  ASSERT_TRUE(RunUntil([&] { return ev_.failed > 0; })) << "no failure reported";
  EXPECT_EQ(ev_.ready, 0);
  EXPECT_EQ(ev_.failed, 1);
  EXPECT_EQ(ev_.failed_id, "rep_bad");
  EXPECT_NE(ev_.why.find("before it was ready"), std::string::npos) << ev_.why;
  EXPECT_EQ(Engines().state("rep_bad"), EngineReplicas::State::kGone);
}

TEST_F(EngineReplicasTest, ConfigErrorsNameTheField) {
  EngineConfig c = config_;
  c.engine = "vllm";
  EXPECT_NE(ValidateEngineConfig(c).message().find("unknown engine"), std::string::npos);
  c = config_;
  c.server = "/nonexistent/llama-server";
  EXPECT_NE(ValidateEngineConfig(c).message().find("`server`"), std::string::npos);
  c = config_;
  c.model_path = "/nonexistent.gguf";
  EXPECT_NE(ValidateEngineConfig(c).message().find("`model_path`"), std::string::npos);
  EXPECT_FALSE(Engines().Start("rep_x", c).ok());
  const std::vector<std::string> cmd = EngineCommand(config_, "127.0.0.1", "4242");
  EXPECT_EQ(cmd.front(), config_.server);
  EXPECT_NE(std::find(cmd.begin(), cmd.end(), "4242"), cmd.end());
  EXPECT_EQ(cmd.back(), "1");  // the extra args come last
}

// The gateway's ReplicaHost side: a model named in `engines` gets engine replicas, routed to
// once ready (a placeholder keeps the model known meanwhile) and killed by StopReplica.
TEST_F(EngineReplicasTest, GatewayRoutesToAnEngineReplicaOnceReadyAndStopsIt) {
  GatewayOptions o;
  o.sim_models.push_back({.model = "random-llama", .replicas = 1, .gpus_per_replica = 0, .tokens_per_s = 0,
                          .first_token = Duration::Millis(0)});
  o.engines["random-llama"] = config_;
  ManualClock clock;
  auto g = Gateway::Create(ioc_, o, market::PriceBook{}, /*accounts=*/nullptr, &clock);
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto routable = [&] {
    for (const Replica& r : (*g)->router().replicas()) {
      if (r.model == "random-llama" && !r.draining) return r.id;
    }
    return std::string();
  };
  EXPECT_TRUE((*g)->router().Serves("random-llama")) << "known while loading";
  ASSERT_TRUE(RunUntil([&] { return !routable().empty(); })) << "no engine replica became routable";
  const std::string id = routable();
  EXPECT_EQ(id.rfind("rep_eng", 0), 0u) << id;
  // One more, as the fleet would place it.
  auto second = (*g)->StartReplica("random-llama");
  ASSERT_TRUE(second.ok()) << second.status().message();
  ASSERT_TRUE(RunUntil([&] {
    int n = 0;
    for (const Replica& r : (*g)->router().replicas()) n += r.model == "random-llama" && !r.draining ? 1 : 0;
    return n == 2;
  }));
  (*g)->DrainReplica(id);
  (*g)->StopReplica(id);
  (*g)->StopReplica(*second);
  EXPECT_TRUE(routable().empty());
  (*g)->Shutdown();
  ioc_.run_for(std::chrono::milliseconds(100));
}

}  // namespace
}  // namespace ll::gateway
