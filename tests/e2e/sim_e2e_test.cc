// Whole-system tests: the real `landlord` binary on the shipped default trace, on the Alibaba
// openb trace (when ../shared/data is present) and on a generated Slurm sacct file. These are
// the acceptance checks of `landlord sim`.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/rng.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One temp dir for the whole run, removed at exit.
struct TempRoot {
  fs::path dir = fs::temp_directory_path() / ("landlord-e2e-" + std::to_string(::getpid()));
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

fs::path TempDir() {
  static TempRoot root;
  fs::create_directories(root.dir);
  return root.dir;
}

struct Output {
  int rc = -1;
  std::string text;  // stdout + stderr
};

Output Landlord(const std::string& args) {
  std::string cmd = std::string(LL_LANDLORD_BIN) + " " + args + " 2>&1";
  Output out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.text.append(buf, n);
  int status = ::pclose(p);
  out.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

json ReadJson(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

TEST(SimE2E, HeliosDefaultTraceMeetsTheHarvestAndImpactTargets) {
  fs::path out = TempDir() / "helios.json";
  fs::path svg = TempDir() / "helios.svg";
  Output r = Landlord(std::string("sim --trace helios:") + LL_SOURCE_DIR + "/data/helios_earth_2020_05 --json " +
                 out.string() + " --svg " + svg.string());
  ASSERT_EQ(r.rc, 0) << r.text;
  json j = ReadJson(out);
  ASSERT_TRUE(j.contains("trace"));
  const json& p = j["policies"];
  for (const char* name : {"baseline", "spot-all", "lend-limit:0.5", "landlord", "oracle"}) {
    ASSERT_TRUE(p.contains(name)) << name;
    for (const char* m : {"harvest_ratio", "internal_delayed_frac", "reserved_violations", "events_per_s",
                          "capacity_gpu_h", "sold_gpu_h", "revenue_per_gpu_h", "energy_kwh"}) {
      EXPECT_TRUE(p[name].contains(m)) << name << " " << m;
    }
  }
  EXPECT_EQ(p["baseline"]["sold_gpu_h"].get<double>(), 0.0);
  // Honest harvest: only GPU-hours idle under `baseline` count, so no policy passes 1; what was
  // sold while the owner waited is reported on its own (spot-all sells some).
  for (auto& [name, m] : p.items()) {
    EXPECT_LE(m["harvest_ratio"].get<double>(), 1.0) << name;
    EXPECT_LE(m["harvested_gpu_h"].get<double>(), m["sold_gpu_h"].get<double>() + 1e-6) << name;
    EXPECT_GE(m["sold_while_owner_waited_gpu_h"].get<double>(), 0.0) << name;
  }
  EXPECT_GT(p["spot-all"]["sold_while_owner_waited_gpu_h"].get<double>(), 0.0);
  const json& ll = p["landlord"];
  // Issue 19's acceptance: the flash tier sells what the cooldown holds back (constants chosen
  // on the first two weeks; docs/sim.md reports the last two apart).
  EXPECT_GE(ll["harvest_ratio"].get<double>(), 0.95);
  EXPECT_LE(ll["internal_delayed_frac"].get<double>(), 0.001);
  EXPECT_EQ(ll["reserved_violations"].get<int64_t>(), 0);
  EXPECT_GT(ll["flash_gpu_h"].get<double>(), 0.0);
  EXPECT_LE(ll["reclaim_latency_p99_s"].get<double>(), 120.0);  // no reclaim waits past its tier's notice
  const json& lend = p["lend-limit:0.5"];
  EXPECT_GT(ll["harvest_ratio"].get<double>(), lend["harvest_ratio"].get<double>());
  EXPECT_LE(ll["internal_delayed_frac"].get<double>(), lend["internal_delayed_frac"].get<double>());
  EXPECT_GE(p["oracle"]["harvest_ratio"].get<double>(), ll["harvest_ratio"].get<double>());
  EXPECT_TRUE(fs::file_size(svg) > 1000);
  // The table names every policy.
  EXPECT_NE(r.text.find("lend-limit:0.5"), std::string::npos);
}

// The policy's constants were chosen on the first two weeks of May; the last two, as a Helios
// cluster directory of their own (each VC resumes at its level at the cut), must meet the same
// targets with the policy starting cold.
TEST(SimE2E, HeldOutWeeksMeetTheTargets) {
  std::ifstream in(std::string(LL_SOURCE_DIR) + "/data/helios_earth_2020_05/earth_vc_sequence_2020-05_changepoints.csv");
  std::string header, line;
  ASSERT_TRUE(std::getline(in, header));
  ASSERT_EQ(header.rfind("vc,time,", 0), 0u) << header;
  const std::string cut = "2020-05-15 00:00:00";
  fs::path dir = TempDir() / "helios_w34";
  fs::create_directories(dir);
  std::ofstream out(dir / "earth_vc_sequence_w34.csv");
  out << header << "\n";
  std::string vc, before;  // the VC of the rows being read, its last row before the cut
  bool resumed = false;
  while (std::getline(in, line)) {
    const size_t c1 = line.find(','), c2 = line.find(',', c1 + 1);
    const std::string row_vc = line.substr(0, c1), t = line.substr(c1 + 1, c2 - c1 - 1);
    if (row_vc != vc) {
      vc = row_vc;
      before.clear();
      resumed = false;
    }
    if (t < cut) {
      before = line;
      continue;
    }
    if (!resumed && t != cut && !before.empty()) out << row_vc << "," << cut << before.substr(before.find(',', c1 + 1)) << "\n";
    resumed = true;
    out << line << "\n";
  }
  out.close();
  fs::path json_out = TempDir() / "w34.json";
  Output r = Landlord("sim --policies baseline,landlord --trace helios:" + dir.string() + " --json " + json_out.string());
  ASSERT_EQ(r.rc, 0) << r.text;
  const json ll = ReadJson(json_out)["policies"]["landlord"];
  EXPECT_GE(ll["harvest_ratio"].get<double>(), 0.95) << ll.dump();
  EXPECT_LE(ll["internal_delayed_frac"].get<double>(), 0.001) << ll.dump();
  EXPECT_EQ(ll["reserved_violations"].get<int64_t>(), 0);
  EXPECT_NEAR(ll["harvest_ratio"].get<double>(), 0.963, 0.01) << "the held-out figure docs/sim.md reports";
}

TEST(SimE2E, SameSeedSameNumbers) {
  fs::path a = TempDir() / "a.json", b = TempDir() / "b.json";
  std::string base = std::string("sim --policies baseline,landlord --trace helios:") + LL_SOURCE_DIR +
                     "/data/helios_earth_2020_05 --json ";
  ASSERT_EQ(Landlord(base + a.string()).rc, 0);
  ASSERT_EQ(Landlord(base + b.string()).rc, 0);
  json ja = ReadJson(a), jb = ReadJson(b);
  for (auto& [name, metrics] : ja["policies"].items()) {
    for (auto& [m, v] : metrics.items()) {
      if (m == "wall_s" || m == "events_per_s") continue;
      EXPECT_EQ(v, jb["policies"][name][m]) << name << " " << m;
    }
  }
}

void ExpectWaitsReported(const json& p, double notice_s) {
  for (const char* name : {"baseline", "spot-all", "lend-limit:0.5", "landlord", "oracle"}) {
    ASSERT_TRUE(p.contains(name));
    ASSERT_TRUE(p[name]["internal_wait_added_mean_s"].is_number()) << name;
    ASSERT_TRUE(p[name]["internal_wait_added_p99_s"].is_number()) << name;
  }
  EXPECT_LE(p["landlord"]["internal_wait_added_p99_s"].get<double>(), notice_s);
}

TEST(SimE2E, OpenbAtSeventyPercentLoadReportsAddedWaits) {
  std::string dir = std::string(LL_SHARED_DATA_DIR) + "/traces/alibaba_gpu_v2023";
  if (!fs::exists(dir)) GTEST_SKIP() << "skipped: ../shared/data not present (openb is not shipped)";
  fs::path out = TempDir() / "openb.json";
  Output r = Landlord("sim --trace openb:" + dir + " --load-scale 0.8 --json " + out.string());
  ASSERT_EQ(r.rc, 0) << r.text;
  json p = ReadJson(out)["policies"];
  ExpectWaitsReported(p, 120);
  double util = p["baseline"]["utilization"].get<double>();
  EXPECT_NEAR(util, 0.70, 0.08) << "owner utilization under baseline";
}

// A week of a 2-partition cluster in `sacct --parsable2` form, with job steps and a cancelled
// job, as an owner would export it (written once per run).
fs::path GeneratedSacct() {
  fs::path f = TempDir() / "sacct.txt";
  if (fs::exists(f)) return f;
  {
    std::ofstream o(f);
    o << "JobID|Submit|Start|End|AllocTRES|ReqTRES|Partition\n";
    ll::Rng rng(7);
    int64_t t = 0;
    for (int i = 1; i <= 3000; ++i) {
      t += static_cast<int64_t>(rng.Exponential(200));
      int gpus = std::vector<int>{1, 1, 2, 4, 8, 8, 16}[rng.Below(7)];
      int64_t dur = 60 + static_cast<int64_t>(rng.Exponential(3600));
      int64_t start = t + static_cast<int64_t>(rng.Below(30));
      auto ts = [](int64_t s) {
        char b[96];
        int64_t d = s / 86400, r = s % 86400;
        std::snprintf(b, sizeof b, "2024-03-%02lldT%02lld:%02lld:%02lld", static_cast<long long>(d + 1),
                      static_cast<long long>(r / 3600), static_cast<long long>(r / 60 % 60), static_cast<long long>(r % 60));
        return std::string(b);
      };
      if (t > 27 * 86400) break;
      const char* part = (i % 3 == 0) ? "research" : "prod";
      o << i << "|" << ts(t) << "|" << ts(start) << "|" << ts(start + dur) << "|billing=8,cpu=8,gres/gpu=" << gpus
        << ",node=1||" << part << "\n";
      o << i << ".batch|" << ts(t) << "|" << ts(start) << "|" << ts(start + dur) << "|cpu=8,gres/gpu=" << gpus << "||\n";
      if (i % 97 == 0) o << "9" << i << "|" << ts(t) << "|Unknown|Unknown||gres/gpu=8|prod\n";
    }
  }
  return f;
}

TEST(SimE2E, GeneratedSacctFileReportsAddedWaits) {
  fs::path f = GeneratedSacct();
  fs::path out = TempDir() / "sacct.json";
  Output r = Landlord("sim --trace sacct:" + f.string() + " --json " + out.string());
  ASSERT_EQ(r.rc, 0) << r.text;
  // The figures docs/sim.md reports for this trace.
  if (std::getenv("LL_PRINT_TABLES") != nullptr) std::cout << r.text;
  ExpectWaitsReported(ReadJson(out)["policies"], 120);
}

// Issue 19's levers, each on its own (docs/sim.md's sweep): each keeps the rules (no policy's
// harvest past 1, no reserved lease reclaimed, no reclaim waiting past its tier's notice, the
// owner's added wait p99 within the notice) on the default trace and the generated sacct one.
TEST(SimE2E, EachHarvestLeverKeepsTheRules) {
  const std::string helios = std::string("helios:") + LL_SOURCE_DIR + "/data/helios_earth_2020_05";
  const std::string sacct = "sacct:" + GeneratedSacct().string();
  for (const std::string lever : {"--flash-max-delay 0.01", "--reserved-quantile 0.95"}) {
    for (const std::string& trace : {helios, sacct}) {
      fs::path out = TempDir() / "lever.json";
      Output r = Landlord("sim --policies baseline,spot-all,landlord,oracle --trace " + trace + " " + lever +
                          " --json " + out.string());
      ASSERT_EQ(r.rc, 0) << r.text;
      const json p = ReadJson(out)["policies"];
      for (auto& [name, m] : p.items()) EXPECT_LE(m["harvest_ratio"].get<double>(), 1.0) << lever << " " << name;
      const json& ll = p["landlord"];
      EXPECT_EQ(ll["reserved_violations"].get<int64_t>(), 0) << lever << " " << trace;
      EXPECT_LE(ll["reclaim_latency_p99_s"].get<double>(), 120.0) << lever << " " << trace;
      if (trace == sacct) {
        EXPECT_LE(ll["internal_wait_added_p99_s"].get<double>(), 120.0) << lever;
      }
      // The hazards alone keep the acceptance on the default trace (docs/sim.md: 0.963 / 0.00072);
      // the lower reserved quantile does not (its forecast misses delay the owner).
      if (trace == helios && lever.find("flash") != std::string::npos) {
        EXPECT_GE(ll["harvest_ratio"].get<double>(), 0.95);
        EXPECT_LE(ll["internal_delayed_frac"].get<double>(), 0.001);
      }
    }
  }
}

TEST(SimE2E, BadInputGivesAClearErrorAndExitCode) {
  fs::path f = TempDir() / "bad.csv";
  {
    std::ofstream o(f);
    o << "submit_s,gpus,duration_s\n0,8,3600\n10,abc,60\n";
  }
  Output r = Landlord("sim --trace csv:" + f.string());
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.text.find(f.string() + ":3"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("gpus"), std::string::npos) << r.text;
  r = Landlord("sim --policies landlord,nope");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.text.find("unknown policy `nope`"), std::string::npos) << r.text;
  r = Landlord("sim --trace helios:/nonexistent");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.text.find("/nonexistent"), std::string::npos) << r.text;
}

TEST(SimE2E, HelpExplainsEveryOption) {
  Output r = Landlord("sim --help");
  EXPECT_EQ(r.rc, 0);
  for (const char* opt : {"--trace", "--policies", "--notice", "--external", "--inference", "--json", "--svg", "--seed",
                          "--load-scale", "--config"}) {
    EXPECT_NE(r.text.find(opt), std::string::npos) << opt;
  }
  EXPECT_EQ(Landlord("--help").rc, 0);
}

TEST(SimE2E, InferenceAndExternalTraceRun) {
  fs::path ext = TempDir() / "ext.csv";
  {
    std::ofstream o(ext);
    o << "submit_s,gpus,duration_s\n";
    for (int i = 0; i < 2000; ++i) o << i * 600 << "," << (i % 3 == 0 ? 8 : 2) << "," << 1800 + (i % 7) * 600 << "\n";
  }
  fs::path out = TempDir() / "inf.json";
  Output r = Landlord(std::string("sim --policies baseline,landlord --trace helios:") + LL_SOURCE_DIR +
                 "/data/helios_earth_2020_05 --external csv:" + ext.string() + " --inference azure:" + LL_SOURCE_DIR +
                 "/data/azure_llm_2023 --json " + out.string());
  ASSERT_EQ(r.rc, 0) << r.text;
  json p = ReadJson(out)["policies"]["landlord"];
  EXPECT_GT(p["inference_gpu_h"].get<double>(), 0);
  EXPECT_GT(p["spot_gpu_h"].get<double>(), 0);
  EXPECT_TRUE(p["cost_per_mtok_usd"].is_number());
  EXPECT_GE(p["spot_price_mean_usd"].get<double>(), 0.2256);
}

}  // namespace
