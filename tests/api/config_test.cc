// `landlord serve` configuration: the documented example loads as documented, and every bad
// value is refused with the file, line and key.
#include "api/config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace ll::api {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (std::filesystem::temp_directory_path() / "ll_config_XXXXXX").string();
    ASSERT_NE(mkdtemp(t.data()), nullptr);
    dir_ = t;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& text) {
    std::string path = dir_ + "/c.toml";
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(ConfigTest, TheDocumentedExampleLoads) {
  ServeConfig c;
  Status st = LoadServeConfig(std::string(LL_SOURCE_DIR) + "/docs/serve.example.toml", &c);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(c.prices.gpu_model, "H100");
  ASSERT_EQ(c.prices.reserved_terms.size(), 3u);
  EXPECT_EQ(c.prices.reserved_terms[2].term, Duration::Hours(168));
  EXPECT_EQ(c.prices.reserved_terms[2].discount_permille, 400);
  EXPECT_EQ(c.prices.flash_discount_permille, 300);
  EXPECT_EQ(c.flash_notice, Duration::Seconds(30));
  auto llama = c.prices.TokenPricesFor("llama-3-8b");
  EXPECT_EQ(llama.input_per_mtok, Money::Micros(100'000));
  EXPECT_EQ(llama.output_per_mtok, Money::Micros(400'000));
  auto other = c.prices.TokenPricesFor("other-model");
  EXPECT_EQ(other.input_per_mtok, Money::Micros(200'000));
}

TEST_F(ConfigTest, BadPricesNameTheFileLineAndKey) {
  struct Case {
    const char* toml;
    const char* expect;
  } cases[] = {
      {"[prices]\nreserved_terms = [{hours = 4, discount_pct = 120}]\n", "c.toml:2: `prices.reserved_terms` `discount_pct`"},
      {"[prices]\nreserved_terms = [{hours = 24, discount_pct = 1}, {hours = 4, discount_pct = 2}]\n",
       "terms must grow"},
      {"[prices]\nreserved_terms = [{hours = 4, rate = 2}]\n", "unknown key `rate`"},
      {"[prices]\nreserved_terms = []\n", "non-empty"},
      {"[prices.models.m]\ninput_per_mtok = \"x\"\n", "c.toml:2: `prices.models.m.input_per_mtok`"},
      {"[prices.models.m]\nprice = \"1\"\n", "c.toml:2: unknown key `prices.models.m.price`"},
      {"[prices]\nmodels = 3\n", "c.toml:2: `prices.models` must be a table"},
      {"[prices]\nbogus = 1\n", "c.toml:2: unknown key `prices.bogus`"},
      {"[prices]\nflash_discount_pct = 100\n", "`prices.flash_discount_pct`"},
      {"[policy]\nflash_notice_s = -1\n", "`policy.flash_notice_s`"},
  };
  for (const auto& c : cases) {
    ServeConfig cfg;
    Status st = LoadServeConfig(Write(c.toml), &cfg);
    ASSERT_FALSE(st.ok()) << c.toml;
    EXPECT_NE(st.message().find(c.expect), std::string::npos) << c.toml << " → " << st.message();
  }
}

TEST_F(ConfigTest, TheGatewayTableIsReadAndCheckedToo) {
  ServeConfig c;
  ASSERT_TRUE(LoadServeConfig(std::string(LL_SOURCE_DIR) + "/docs/serve.example.toml", &c).ok());
  EXPECT_EQ(c.gateway.rpm, 600);
  ASSERT_EQ(c.gateway.sim_models.size(), 1u);
  EXPECT_EQ(c.gateway.sim_models[0].gpus_per_replica, 8);
  EXPECT_TRUE(c.gateway.upstreams.empty());

  ServeConfig u;
  ASSERT_TRUE(LoadServeConfig(Write("[gateway]\nrpm = 5\n[[gateway.upstreams]]\nmodel = \"m\"\nurl = \"http://127.0.0.1:9000/v1\"\n"), &u).ok());
  EXPECT_EQ(u.gateway.rpm, 5);
  ASSERT_EQ(u.gateway.upstreams.size(), 1u);
  EXPECT_TRUE(u.gateway.sim_models.empty()) << "upstreams replace the simulated default";

  // An engine model: placed like a simulated one, its replicas the engine's processes.
  ServeConfig e;
  Status st = LoadServeConfig(Write("[[gateway.engines]]\nmodel = \"m\"\nreplicas = 3\ngpus_per_replica = 2\n"
                                    "server = \"/bin/true\"\nmodel_path = \"/etc/hostname\"\nargs = [\"-c\", \"512\"]\n"
                                    "threads = 2\nlog_dir = \"logs\"\n"),
                              &e);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(e.gateway.sim_models.size(), 1u) << "engines replace the simulated default";
  EXPECT_EQ(e.gateway.sim_models[0].model, "m");
  EXPECT_EQ(e.gateway.sim_models[0].replicas, 3);
  EXPECT_EQ(e.gateway.sim_models[0].gpus_per_replica, 2);
  ASSERT_EQ(e.gateway.engines.count("m"), 1u);
  const gateway::EngineConfig& engine = e.gateway.engines.at("m");
  EXPECT_EQ(engine.engine, "llama.cpp");
  EXPECT_EQ(engine.server, "/bin/true");
  EXPECT_EQ(engine.model_path, "/etc/hostname");
  EXPECT_EQ(engine.args, (std::vector<std::string>{"-c", "512"}));
  EXPECT_EQ(engine.threads, 2);
  EXPECT_EQ(engine.log_dir, "logs");
  // On Slurm its replica jobs run the same server: the command is derived, with the node's
  // address and the replica's port filled in there (`{addr}`, `{port}`).
  ASSERT_EQ(e.slurm.model_commands.count("m"), 1u);
  EXPECT_EQ(e.slurm.model_commands.at("m"),
            "'/bin/true' '-m' '/etc/hostname' '-t' '2' '--host' '{addr}' '--port' '{port}' '-c' '512'");
  EXPECT_EQ(e.slurm.model_command, "") << "the other models' command is not touched";

  struct Case {
    const char* toml;
    const char* expect;
  } cases[] = {
      {"[gateway]\nrpm = -1\n", "c.toml:2: `gateway.rpm`"},
      {"[gateway]\naffinity = 1\n", "c.toml:2: `gateway.affinity` must be true or false"},
      {"[gateway]\nbogus = 1\n", "c.toml:2: unknown key `gateway.bogus`"},
      {"[[gateway.upstreams]]\nmodel = \"m\"\nurl = \"ftp://x\"\n", "c.toml:3: `gateway.upstreams` [0].url"},
      {"[[gateway.upstreams]]\nurl = \"http://127.0.0.1:1\"\n", "`gateway.upstreams` [0].model"},
      {"[[gateway.upstreams]]\nmodel = \"m\"\nurl = \"http://h:1\"\nkey = 1\n", "unknown key `key`"},
      {"[[gateway.sim_models]]\nmodel = \"m\"\nreplicas = 0\n", "c.toml:3: `gateway.sim_models` [0].replicas"},
      {"[[gateway.sim_models]]\nmodel = \"m\"\ngpus_per_replica = -8\n", "[0].gpus_per_replica"},
      {"[[gateway.engines]]\nmodel = \"m\"\nengine = \"vllm\"\n", "c.toml:3: `gateway.engines` [0].engine unknown engine `vllm`"},
      {"[[gateway.engines]]\nmodel = \"m\"\nserver = \"/nonexistent/llama-server\"\nmodel_path = \"/etc/hostname\"\n",
       "c.toml:3: `gateway.engines` [0].server"},
      {"[[gateway.engines]]\nmodel = \"m\"\nserver = \"/bin/true\"\nmodel_path = \"/nonexistent.gguf\"\n",
       "c.toml:4: `gateway.engines` [0].model_path"},
      {"[[gateway.engines]]\nmodel = \"m\"\nserver = \"/bin/true\"\n", "`gateway.engines` [0].model_path must name"},
      {"[[gateway.engines]]\nmodel = \"m\"\nserver = \"/bin/true\"\nmodel_path = \"/etc/hostname\"\nargs = \"-c 9\"\n",
       "c.toml:5: `gateway.engines` [0].args must be an array of strings"},
      {"[[gateway.engines]]\nmodel = \"m\"\nserver = \"/bin/true\"\nmodel_path = \"/etc/hostname\"\nthreads = 0\n",
       "c.toml:5: `gateway.engines` [0].threads"},
      {"[[gateway.engines]]\nmodel = \"m\"\nport = 1\n", "c.toml:3: `gateway.engines` [0]: unknown key `port`"},
      {"[[gateway.sim_models]]\nmodel = \"m\"\n[[gateway.engines]]\nmodel = \"m\"\nserver = \"/bin/true\"\n"
       "model_path = \"/etc/hostname\"\n",
       "c.toml:4: `gateway.engines` [0].model `m` is served twice"},
  };
  for (const auto& k : cases) {
    ServeConfig cfg;
    Status st = LoadServeConfig(Write(k.toml), &cfg);
    EXPECT_FALSE(st.ok()) << k.toml;
    if (st.ok()) continue;
    EXPECT_NE(st.message().find(k.expect), std::string::npos) << k.toml << " → " << st.message();
  }
}

TEST_F(ConfigTest, TheStoreIsSqliteUnlessAPostgresUrlIsGiven) {
  ServeConfig c;
  ASSERT_TRUE(LoadServeConfig(Write("[server]\ndata_dir = \"d\"\n"), &c).ok());
  EXPECT_EQ(c.store, "") << "SQLite in data_dir by default";
  ASSERT_TRUE(LoadServeConfig(Write("[server]\nstore = \"postgresql://u@db/landlord\"\n"), &c).ok());
  EXPECT_EQ(c.store, "postgresql://u@db/landlord");
  ServeConfig bad;
  Status st = LoadServeConfig(Write("[server]\n\nstore = \"sqlite:/tmp/x.db\"\n"), &bad);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("c.toml:3: `server.store` must be a postgresql:// URL"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace ll::api
