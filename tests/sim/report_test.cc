#include "sim/report.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/time.h"
#include "sim/metrics.h"

namespace ll::sim {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr int64_t kMay1 = 1'588'291'200'000;  // 2020-05-01T00:00:00Z

// A fresh directory per test, removed afterwards, so parallel ctest runs do not collide.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("ll_report_test_" + std::to_string(::getpid()) + "_" +
                                         info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path path() const { return path_; }

 private:
  fs::path path_;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

SimReport SampleReport() {
  SimReport r;
  r.trace.spec = "helios:venus";
  r.trace.description = "Venus cluster, May 2020";
  r.trace.begin = "2020-05-01T00:00:00Z";
  r.trace.end = "2020-06-01T00:00:00Z";
  r.trace.nodes = 133;
  r.trace.gpus = 1064;
  r.trace.pools = 2;
  r.trace.jobs = 0;
  r.trace.excluded_h = 12.5;
  r.trace.external = "saturating";
  r.trace.external_prices = "lognormal(2.0, 0.3)";
  r.trace.inference = "";
  r.trace.notice_s = 120;
  r.trace.seed = 7;

  PolicyMetrics base;
  base.capacity_gpu_h = 791'616;
  base.internal_gpu_h = 512'345.678;
  base.idle_gpu_h = 279'270.3;
  base.harvest_ratio = 0;
  base.utilization = 0.6472;
  base.events = 1'234'567;
  base.wall_s = 3.25;
  base.events_per_s = 379'866;

  PolicyMetrics lend = base;
  lend.sold_gpu_h = 260'000;
  lend.spot_gpu_h = 260'000;
  lend.harvested_gpu_h = 260'000;
  lend.harvest_ratio = 0.93123;
  lend.utilization = 0.9312;
  lend.spot_preemptions_per_1k_lease_h = 0.000412;
  lend.revenue_usd = 512'000.7;
  lend.revenue_per_gpu_h = 0.65;
  lend.reclaim_latency_p99_s = 118.04;
  lend.reserved_violations = 3;
  lend.leases = 9'001;

  PolicyMetrics landlord = lend;
  landlord.internal_wait_added_mean_s = 4.5;  // the others keep NaN

  // Deliberately not alphabetical, to catch a map that sorts.
  r.policies = {{"landlord", landlord}, {"baseline", base}, {"lend-limit:0.5", lend}};
  return r;
}

// ---------------------------------------------------------------------------------------------
// JSON

TEST(ReportJsonTest, HasTraceAndEveryMetricOfEveryPolicy) {
  const SimReport r = SampleReport();
  const Json j = Json::parse(ToJson(r));
  ASSERT_TRUE(j.is_object());
  ASSERT_EQ(j.size(), 2u);
  ASSERT_TRUE(j.contains("trace"));
  ASSERT_TRUE(j.contains("policies"));
  const std::vector<std::pair<std::string, double>> fields = PolicyMetrics{}.Fields();
  for (const auto& [policy, metrics] : r.policies) {
    ASSERT_TRUE(j["policies"].contains(policy)) << policy;
    const Json& m = j["policies"][policy];
    EXPECT_EQ(m.size(), fields.size());
    size_t i = 0;
    for (const auto& [key, value] : m.items()) {
      EXPECT_EQ(key, fields[i++].first) << "metrics keep the Fields() order";
    }
    for (const auto& [name, value] : metrics.Fields()) {
      ASSERT_TRUE(m.contains(name)) << policy << " " << name;
      if (std::isnan(value)) {
        EXPECT_TRUE(m[name].is_null()) << name;
      } else {
        EXPECT_DOUBLE_EQ(m[name].get<double>(), value) << name;
      }
    }
  }
}

TEST(ReportJsonTest, NaNAndInfinityBecomeNull) {
  SimReport r = SampleReport();
  r.policies[0].second.revenue_per_kwh_usd = INFINITY;
  r.trace.excluded_h = NAN;
  const Json j = Json::parse(ToJson(r));
  EXPECT_TRUE(j["policies"]["baseline"]["internal_wait_added_mean_s"].is_null());
  EXPECT_TRUE(j["policies"]["baseline"]["cost_per_mtok_usd"].is_null());
  EXPECT_FALSE(j["policies"]["landlord"]["internal_wait_added_mean_s"].is_null());
  EXPECT_TRUE(j["policies"]["landlord"]["revenue_per_kwh_usd"].is_null());
  EXPECT_TRUE(j["trace"]["excluded_h"].is_null());
}

TEST(ReportJsonTest, CountsAreJsonIntegers) {
  const Json j = Json::parse(ToJson(SampleReport()));
  const Json& m = j["policies"]["lend-limit:0.5"];
  for (const char* name :
       {"reserved_violations", "forecast_misses", "reclaims", "leases", "events"}) {
    EXPECT_TRUE(m[name].is_number_integer()) << name;
  }
  EXPECT_EQ(m["reserved_violations"].get<int64_t>(), 3);
  EXPECT_EQ(m["leases"].get<int64_t>(), 9'001);
  EXPECT_EQ(m["events"].get<int64_t>(), 1'234'567);
  EXPECT_TRUE(m["capacity_gpu_h"].is_number_float());
}

TEST(ReportJsonTest, PoliciesKeepRunOrder) {
  const Json j = Json::parse(ToJson(SampleReport()));
  std::vector<std::string> keys;
  for (const auto& [key, value] : j["policies"].items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"landlord", "baseline", "lend-limit:0.5"}));
}

TEST(ReportJsonTest, TraceHasEveryFieldByMemberName) {
  const SimReport r = SampleReport();
  const Json j = Json::parse(ToJson(r));
  const Json& t = j["trace"];
  EXPECT_EQ(t.size(), 14u);
  EXPECT_EQ(t["spec"], r.trace.spec);
  EXPECT_EQ(t["description"], r.trace.description);
  EXPECT_EQ(t["begin"], r.trace.begin);
  EXPECT_EQ(t["end"], r.trace.end);
  EXPECT_EQ(t["nodes"], 133);
  EXPECT_EQ(t["gpus"], 1064);
  EXPECT_EQ(t["pools"], 2);
  EXPECT_EQ(t["jobs"], 0);
  EXPECT_DOUBLE_EQ(t["excluded_h"].get<double>(), 12.5);
  EXPECT_EQ(t["external"], "saturating");
  EXPECT_EQ(t["external_prices"], r.trace.external_prices);
  EXPECT_EQ(t["inference"], "");
  EXPECT_EQ(t["notice_s"], 120);
  EXPECT_EQ(t["seed"], 7u);
}

TEST(ReportJsonTest, WriteJsonWritesTheFileAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = (dir.path() / "report.json").string();
  ASSERT_TRUE(WriteJson(path, SampleReport()).ok());
  const Json j = Json::parse(ReadFile(path));
  EXPECT_TRUE(j["policies"].contains("landlord"));
  // Overwriting an existing report works too (rename over it).
  ASSERT_TRUE(WriteJson(path, SampleReport()).ok());
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "report.json");
  }
  EXPECT_EQ(files, 1u);
}

TEST(ReportJsonTest, WriteJsonToAMissingDirectoryNamesThePath) {
  TempDir dir;
  const std::string path = (dir.path() / "no-such-dir" / "report.json").string();
  const Status st = WriteJson(path, SampleReport());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find(path), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(path));
}

// ---------------------------------------------------------------------------------------------
// Table

TEST(ReportTableTest, HasEveryMetricAndPolicyAndDashForNaN) {
  const SimReport r = SampleReport();
  const std::string table = FormatTable(r);
  for (const auto& [name, value] : PolicyMetrics{}.Fields()) {
    EXPECT_NE(table.find(name), std::string::npos) << name;
  }
  for (const auto& [policy, metrics] : r.policies) {
    EXPECT_NE(table.find(policy), std::string::npos) << policy;
  }
  // The `baseline` column of the wait row is NaN.
  std::istringstream in(table);
  std::string line;
  bool found = false;
  while (std::getline(in, line)) {
    if (line.rfind("internal_wait_added_mean_s", 0) == 0) {
      found = true;
      EXPECT_NE(line.find(" - "), std::string::npos) << line;
      EXPECT_NE(line.find("4.5"), std::string::npos) << line;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_NE(table.find("helios:venus"), std::string::npos);
  EXPECT_NE(table.find("2020-05-01T00:00:00Z"), std::string::npos);
  EXPECT_NE(table.find("1,064 GPUs"), std::string::npos);
  EXPECT_NE(table.find("saturating"), std::string::npos);
  EXPECT_NE(table.find("lognormal(2.0, 0.3)"), std::string::npos);
}

TEST(ReportTableTest, FormatsNumbersByUnit) {
  const std::string table = FormatTable(SampleReport());
  EXPECT_NE(table.find("791,616"), std::string::npos) << table;    // GPU-hours
  EXPECT_NE(table.find("512,346"), std::string::npos) << table;    // rounded GPU-hours
  EXPECT_NE(table.find("0.9312"), std::string::npos) << table;     // ratio
  EXPECT_NE(table.find("0.000412"), std::string::npos) << table;   // tiny rate keeps digits
  EXPECT_NE(table.find("118.0"), std::string::npos) << table;      // seconds
  EXPECT_NE(table.find("512,001"), std::string::npos) << table;    // dollars
  EXPECT_NE(table.find("0.65"), std::string::npos) << table;       // a price
  EXPECT_NE(table.find("1,234,567"), std::string::npos) << table;  // a count
  EXPECT_NE(table.find("379,866"), std::string::npos) << table;    // events per second
  EXPECT_EQ(table.find("nan"), std::string::npos) << table;
}

TEST(ReportTableTest, RowsLineUpForLongPolicyNames) {
  SimReport r = SampleReport();
  r.policies.emplace_back("a-rather-long-policy-name:0.125", PolicyMetrics{});
  const std::string table = FormatTable(r);
  // Every row of the metric table is exactly as wide as the header row.
  const size_t start = table.find("metric");
  ASSERT_NE(start, std::string::npos);
  std::istringstream in(table.substr(start));
  std::string header;
  std::getline(in, header);
  EXPECT_NE(header.find("a-rather-long-policy-name:0.125"), std::string::npos);
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    EXPECT_EQ(line.size(), header.size()) << line;
    ++rows;
  }
  EXPECT_EQ(rows, static_cast<int>(PolicyMetrics{}.Fields().size()) + 1);  // + the rule
}

// ---------------------------------------------------------------------------------------------
// SVG

// Checks that tags nest and close: enough XML to catch a broken writer without a parser.
bool TagsBalance(const std::string& svg) {
  std::vector<std::string> open;
  size_t pos = 0;
  while ((pos = svg.find('<', pos)) != std::string::npos) {
    const size_t end = svg.find('>', pos);
    if (end == std::string::npos) return false;
    const std::string tag = svg.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (tag.empty()) return false;
    if (tag[0] == '/') {
      if (open.empty() || open.back() != tag.substr(1)) return false;
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(tag.substr(0, tag.find_first_of(" \n")));
    }
  }
  return open.empty();
}

std::vector<FleetSample> Series(size_t n, Duration step, size_t gap_from, size_t gap_to) {
  std::vector<FleetSample> out;
  for (size_t i = 0; i < n; ++i) {
    FleetSample s;
    s.t = Time{kMay1} + step * static_cast<int64_t>(i);
    s.internal = 600 + static_cast<int32_t>(i % 200);
    s.reserved = 100;
    s.spot = 150 - static_cast<int32_t>(i % 100);
    s.inference = 64;
    s.idle = 1064 - s.internal - s.reserved - s.spot - s.inference;
    s.in_gap = i >= gap_from && i < gap_to;
    out.push_back(s);
  }
  return out;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TEST(ReportSvgTest, DrawsStackLegendAxesAndGaps) {
  const std::string svg = ToSvg(Series(3000, Duration::Minutes(10), 1000, 1300), "Venus <May>");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_TRUE(EndsWith(svg, "</svg>\n"));
  EXPECT_TRUE(TagsBalance(svg));
  for (const char* label : {">internal<", ">reserved<", ">spot<", ">inference<", ">idle<"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
  EXPECT_NE(svg.find("class=\"gap\""), std::string::npos);
  EXPECT_NE(svg.find("no data"), std::string::npos);
  EXPECT_NE(svg.find(">05-01<"), std::string::npos);  // a date tick
  EXPECT_NE(svg.find(">GPUs<"), std::string::npos);
  EXPECT_NE(svg.find("Venus &lt;May&gt;"), std::string::npos);  // the title, escaped
  EXPECT_EQ(svg.find("Venus <May>"), std::string::npos);
  // Self-contained.
  EXPECT_EQ(svg.find("<script"), std::string::npos);
  EXPECT_EQ(svg.find("href"), std::string::npos);
}

TEST(ReportSvgTest, NoGapRectWithoutGaps) {
  const std::string svg = ToSvg(Series(100, Duration::Minutes(1), 0, 0), "t");
  EXPECT_EQ(svg.find("class=\"gap\""), std::string::npos);
  EXPECT_TRUE(TagsBalance(svg));
}

TEST(ReportSvgTest, AMonthAtOneMinuteStaysUnderOneMegabyte) {
  const std::vector<FleetSample> month = Series(44'640, Duration::Minutes(1), 20'000, 21'440);
  const std::string svg = ToSvg(month, "a month");
  EXPECT_LT(svg.size(), 1'000'000u);
  EXPECT_TRUE(TagsBalance(svg));
  EXPECT_NE(svg.find("class=\"gap\""), std::string::npos);
  EXPECT_NE(svg.find(">05-01<"), std::string::npos) << "weekly ticks from the first midnight";
  EXPECT_NE(svg.find(">05-29<"), std::string::npos) << "ticks span the whole month";
}

TEST(ReportSvgTest, ShortAndSingleSampleSeriesAreValid) {
  for (size_t n : {size_t{1}, size_t{2}}) {
    const std::string svg = ToSvg(Series(n, Duration::Minutes(1), 0, n), "tiny");
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    EXPECT_TRUE(TagsBalance(svg)) << n;
    // No division by a zero time span: no "nan" or "inf" coordinates (outside the word
    // "inference").
    std::string numbers = svg;
    for (size_t pos; (pos = numbers.find("inference")) != std::string::npos;) numbers.erase(pos, 9);
    EXPECT_EQ(numbers.find("nan"), std::string::npos) << svg;
    EXPECT_EQ(numbers.find("inf"), std::string::npos) << svg;
  }
}

TEST(ReportSvgTest, EmptySeriesSaysNoData) {
  const std::string svg = ToSvg({}, "empty");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_TRUE(EndsWith(svg, "</svg>\n"));
  EXPECT_TRUE(TagsBalance(svg));
  EXPECT_NE(svg.find("no data"), std::string::npos);
}

TEST(ReportSvgTest, WriteSvgWritesAtomicallyAndReportsFailures) {
  TempDir dir;
  const std::string path = (dir.path() / "fleet.svg").string();
  const std::vector<FleetSample> series = Series(50, Duration::Minutes(1), 10, 20);
  ASSERT_TRUE(WriteSvg(path, series, "fleet").ok());
  EXPECT_EQ(ReadFile(path), ToSvg(series, "fleet"));

  const std::string bad = (dir.path() / "missing" / "fleet.svg").string();
  const Status st = WriteSvg(bad, series, "fleet");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(bad), std::string::npos) << st.message();
}

// ---------------------------------------------------------------------------------------------
// Progress

TEST(ProgressTest, SilentWhenStderrIsNotATerminal) {
  // CaptureStderr points fd 2 at a file, which is exactly the "piped to a log" case.
  ::testing::internal::CaptureStderr();
  {
    Progress p("sim", 1000);
    for (int64_t i = 0; i <= 1000; ++i) p.Update(i);
    p.Finish();
    p.Update(5);  // after Finish: ignored
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(ProgressTest, ToleratesOddTotals) {
  ::testing::internal::CaptureStderr();
  {
    Progress zero("zero", 0);
    zero.Update(10);
    Progress negative("negative", -5);
    negative.Update(-1);
    Progress big("big", INT64_MAX);
    big.Update(INT64_MAX / 2);
    big.Update(INT64_MAX);
  }  // destructors finish
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

// Runs `body` with stderr on a pseudo-terminal and returns what it wrote there.
template <typename Body>
std::string StderrOnATerminal(Body body) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) return "<no pty>";
  const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  if (slave < 0) return "<no pty>";
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(slave, STDERR_FILENO);
  body();  // keep the output under the pty buffer (about 4 KiB) or the write blocks
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(slave);
  std::string out;
  char buf[4096];
  pollfd pfd{master, POLLIN, 0};
  while (::poll(&pfd, 1, 100) > 0 && (pfd.revents & POLLIN)) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(master);
  return out;
}

TEST(ProgressTest, DrawsOnATerminalOnlyWhenThePerMilleChanges) {
  const std::string out = StderrOnATerminal([] {
    Progress p("sim", 2000);
    p.Update(840);
    p.Update(841);  // same per-mille: no redraw
    p.Update(841);
    p.Update(2000);
    p.Finish();
    p.Finish();  // idempotent
  });
  if (out == "<no pty>") GTEST_SKIP() << "no pseudo-terminal available";
  EXPECT_NE(out.find("\rsim [############..................]  42.0%"), std::string::npos) << out;
  EXPECT_NE(out.find("\rsim [##############################] 100.0%"), std::string::npos) << out;
  size_t draws = 0;
  for (size_t pos = 0; (pos = out.find('%', pos)) != std::string::npos; ++pos) ++draws;
  EXPECT_EQ(draws, 2u) << out;
  EXPECT_EQ(out.back(), '\n') << "Finish ends the line";
}

TEST(ProgressTest, DestructorEndsTheLineOnlyIfDrawn) {
  const std::string drawn = StderrOnATerminal([] {
    Progress p("sim", 10);
    p.Update(3);
  });
  if (drawn == "<no pty>") GTEST_SKIP() << "no pseudo-terminal available";
  EXPECT_NE(drawn.find("30.0%"), std::string::npos) << drawn;
  EXPECT_EQ(drawn.back(), '\n');
  const std::string untouched = StderrOnATerminal([] { Progress p("sim", 10); });
  EXPECT_EQ(untouched, "");
}

}  // namespace
}  // namespace ll::sim
