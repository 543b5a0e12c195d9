// Trace readers: the shipped data (Helios, Azure, Mooncake), the Alibaba openb trace when
// ../shared/data is present, and hand-written files for every bad-input path. Every error must
// name the file, the line and the field; no input may crash a reader.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>  // mkdtemp
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/rng.h"
#include "sim/csv.h"
#include "sim/trace.h"

namespace ll::sim {
namespace {

namespace fs = std::filesystem;

const std::string kHeliosDir = LL_SOURCE_DIR "/data/helios_earth_2020_05";
const std::string kAzureDir = LL_SOURCE_DIR "/data/azure_llm_2023";
const std::string kMooncake = LL_SOURCE_DIR "/data/mooncake_fast25/conversation_trace.jsonl";
const std::string kOpenbDir = LL_SHARED_DATA_DIR "/traces/alibaba_gpu_v2023";

Time Utc(const char* text) { return ParseUtc(text).value(); }

// A string literal with embedded NULs, without counting its bytes by hand.
template <size_t N>
std::string Bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ll_trace_test_XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }

 private:
  std::string path_;
};

// The error names file:LINE: and the field in backticks.
template <typename T>
testing::AssertionResult FailsAt(const Result<T>& result, const std::string& file, int line,
                                 const std::string& field) {
  if (result.ok()) return testing::AssertionFailure() << "expected an error, got success";
  const std::string& m = result.status().message();
  const std::string where = file + ":" + std::to_string(line) + ":";
  if (m.find(where) == std::string::npos) {
    return testing::AssertionFailure() << "`" << m << "` does not contain `" << where << "`";
  }
  if (m.find("`" + field + "`") == std::string::npos) {
    return testing::AssertionFailure() << "`" << m << "` does not name field `" << field << "`";
  }
  return testing::AssertionSuccess() << m;
}

// ---------------------------------------------------------------------------------------------
// Low-level reader

TEST(CsvReaderTest, LinesStripCrAndKeepLastLineWithoutNewline) {
  LineReader lines("f.csv", "a,b\r\n\r\nc,d");
  std::vector<std::string> got;
  while (lines.Next()) got.emplace_back(lines.line());
  EXPECT_EQ(got, (std::vector<std::string>{"a,b", "", "c,d"}));
  EXPECT_EQ(lines.line_number(), 3);
}

TEST(CsvReaderTest, FieldErrorsNameFileLineAndField) {
  DelimitedReader in("f.csv", "x,running_gpu_num\n1,abc\n", ',');
  ASSERT_TRUE(in.ReadHeader().ok());
  ASSERT_TRUE(in.Next());
  Result<int64_t> v = in.Int(1);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(),
            "f.csv:2: field `running_gpu_num`: expected an integer, got `abc`");
  Result<int64_t> missing = in.Int(2);
  EXPECT_FALSE(missing.ok());
}

TEST(CsvReaderTest, ParsesNumbersStrictly) {
  int64_t i;
  double d;
  EXPECT_TRUE(ParseInt64("-12", &i));
  EXPECT_EQ(i, -12);
  EXPECT_TRUE(ParseInt64("+7", &i));
  EXPECT_FALSE(ParseInt64("", &i));
  EXPECT_FALSE(ParseInt64("12x", &i));
  EXPECT_FALSE(ParseInt64("99999999999999999999", &i));
  EXPECT_TRUE(ParseDouble("1.5e3", &d));
  EXPECT_EQ(d, 1500);
  EXPECT_FALSE(ParseDouble("nan", &d));
  EXPECT_FALSE(ParseDouble("1e999", &d));
}

TEST(CsvReaderTest, QuotesBinaryForErrors) {
  EXPECT_EQ(QuoteForError(Bytes("a\0\xff")), "a\\x00\\xff");
  EXPECT_EQ(QuoteForError(std::string(100, 'x')).size(), 63u);
}

// ---------------------------------------------------------------------------------------------
// Dispatch

TEST(TraceReaderTest, UnknownPrefixNamesTheAcceptedOnes) {
  Result<Trace> t = ReadTrace("philly:/x", ReadOptions{});
  ASSERT_FALSE(t.ok());
  for (const char* name : {"helios:", "openb:", "sacct:", "csv:"}) {
    EXPECT_NE(t.status().message().find(name), std::string::npos) << t.status().message();
  }
  EXPECT_FALSE(ReadTrace("csv:", ReadOptions{}).ok());
  EXPECT_FALSE(ReadTrace("no-colon", ReadOptions{}).ok());
  EXPECT_EQ(ReadTrace("csv:/nonexistent/x.csv", ReadOptions{}).status().code(),
            StatusCode::kIoError);
  EXPECT_FALSE(ReadTrace("helios:/nonexistent", ReadOptions{}).ok());
}

// ---------------------------------------------------------------------------------------------
// Helios

TEST(HeliosReaderTest, ShippedMay2020) {
  const auto start = std::chrono::steady_clock::now();
  Result<Trace> r = ReadTrace("helios:" + kHeliosDir, ReadOptions{});
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Trace& t = *r;
  std::printf("helios: %zu levels in %.1f ms (this build)\n", t.levels.size(), ms);
  EXPECT_EQ(t.spec, "helios:" + kHeliosDir);
  EXPECT_EQ(t.kind, DemandKind::kOccupancy);
  EXPECT_EQ(t.pools.size(), 16u);
  EXPECT_EQ(t.total_gpus(), 856);
  EXPECT_EQ(t.nodes.size(), 107u);
  EXPECT_EQ(t.begin, Utc("2020-05-01 00:00:00"));
  EXPECT_EQ(t.end, Utc("2020-06-01 00:00:00"));
  EXPECT_NE(t.description.find("16 VCs, 856 GPUs, May 2020"), std::string::npos) << t.description;

  std::map<std::string, Gpus> capacity;
  Gpus pool_sum = 0;
  for (const PoolSpec& p : t.pools) {
    capacity[p.name] = p.gpus;
    pool_sum += p.gpus;
  }
  EXPECT_EQ(pool_sum, 856);
  EXPECT_EQ(t.pools.front().name, "vc3sl");  // first appearance
  EXPECT_EQ(capacity["vc6YE"], 208);
  EXPECT_EQ(capacity["vcgkz"], 8);
  EXPECT_EQ(capacity["vcvlY"], 96);
  EXPECT_EQ(capacity["vcpDC"], 56);
  std::vector<Gpus> node_sum(t.pools.size());
  for (size_t i = 0; i < t.nodes.size(); ++i) {
    const NodeSpec& n = t.nodes[i];
    EXPECT_EQ(n.model, "V100");
    EXPECT_EQ(n.rack, static_cast<int>(i) / 16);
    EXPECT_GE(n.gpus, 1);
    EXPECT_LE(n.gpus, 8);
    node_sum[n.pool] += n.gpus;
  }
  for (size_t p = 0; p < t.pools.size(); ++p) EXPECT_EQ(node_sum[p], t.pools[p].gpus);
  EXPECT_EQ(t.nodes.front().name, "vc3sl-n0");

  ASSERT_EQ(t.gaps.size(), 2u);
  EXPECT_EQ(t.gaps[0].begin, Utc("2020-05-09 23:56:00"));
  EXPECT_EQ(t.gaps[0].end, Utc("2020-05-11 00:01:00"));
  EXPECT_EQ(t.gaps[1].begin, Utc("2020-05-12 14:01:00"));
  EXPECT_EQ(t.gaps[1].end, Utc("2020-05-12 16:02:00"));
  EXPECT_EQ((t.gaps[0].end - t.gaps[0].begin).ms / 60'000, 1445);
  EXPECT_EQ((t.gaps[1].end - t.gaps[1].begin).ms / 60'000, 121);

  ASSERT_FALSE(t.levels.empty());
  std::vector<int> at_gap_end(t.gaps.size());
  for (size_t i = 0; i < t.levels.size(); ++i) {
    const DemandLevel& l = t.levels[i];
    ASSERT_GE(l.pool, 0);
    ASSERT_LT(l.pool, 16);
    EXPECT_GE(l.t, t.begin);
    EXPECT_LT(l.t, t.end);
    EXPECT_GE(l.gpus, 0);
    if (i > 0) {
      const DemandLevel& prev = t.levels[i - 1];
      ASSERT_TRUE(prev.t < l.t || (prev.t == l.t && prev.pool < l.pool)) << "level " << i;
    }
    for (size_t g = 0; g < t.gaps.size(); ++g) {
      EXPECT_FALSE(t.gaps[g].begin <= l.t && l.t < t.gaps[g].end) << FormatUtc(l.t);
      if (l.t == t.gaps[g].end) ++at_gap_end[g];
    }
  }
  // Every pool resumes with its level in force at each gap's end.
  EXPECT_EQ(at_gap_end[0], 16);
  EXPECT_EQ(at_gap_end[1], 16);
  // Every pool has a level at the start.
  for (int p = 0; p < 16; ++p) EXPECT_EQ(t.levels[p].t, t.begin);
}

TEST(HeliosReaderTest, RacksFollowNodesPerRack) {
  ReadOptions options;
  options.nodes_per_rack = 4;
  Result<Trace> t = ReadHelios(kHeliosDir, options);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->nodes.back().rack, 106 / 4);
  options.nodes_per_rack = 0;
  EXPECT_FALSE(ReadHelios(kHeliosDir, options).ok());
}

constexpr const char* kHeliosFile = "earth_vc_sequence_2020-05_changepoints.csv";
// Columns in a different order than the real file, plus one the reader ignores.
constexpr const char* kHeliosHeader =
    "time,vc,running_job_num,pending_job_num,total_gpu_num,running_gpu_num,pending_gpu_num,"
    "gpu_utilization\n";

std::string HeliosRow(const char* time, const char* vc, int jobs, int total, int running,
                      int pending) {
  return std::string(time) + "," + vc + "," + std::to_string(jobs) + ",0," + std::to_string(total) +
         "," + std::to_string(running) + "," + std::to_string(pending) + ",0.5\n";
}

TEST(HeliosReaderTest, GapsDropLevelsAndResumeAtTheEnd) {
  TempDir dir;
  // Both VCs idle 01:00–02:00 (a gap), and 03:00–03:10 (too short to be one). vcB changes
  // inside the gap; vcA does not.
  std::string text = kHeliosHeader;
  text += HeliosRow("2020-05-01 00:00:00", "vcA", 2, 16, 10, 4);
  text += HeliosRow("2020-05-01 01:00:00", "vcA", 0, 16, 0, 0);
  text += HeliosRow("2020-05-01 02:00:00", "vcA", 1, 16, 8, 0);
  text += HeliosRow("2020-05-01 03:00:00", "vcA", 0, 16, 0, 0);
  text += HeliosRow("2020-05-01 03:10:00", "vcA", 1, 16, 8, 0);
  text += HeliosRow("2020-05-01 04:00:00", "vcA", 1, 16, 8, 0);
  text += HeliosRow("2020-05-01 00:00:00", "vcB", 1, 12, 4, 0);
  text += HeliosRow("2020-05-01 00:30:00", "vcB", 0, 12, 0, 0);
  text += HeliosRow("2020-05-01 01:30:00", "vcB", 0, 12, 0, 0);  // inside the gap
  text += HeliosRow("2020-05-01 04:00:00", "vcB", 1, 12, 3, 30);
  dir.Write(kHeliosFile, text);
  Result<Trace> r = ReadHelios(dir.path(), ReadOptions{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Trace& t = *r;
  EXPECT_EQ(t.pools.size(), 2u);
  EXPECT_EQ(t.total_gpus(), 28);
  ASSERT_EQ(t.nodes.size(), 4u);  // vcA 8+8, vcB 8+4
  EXPECT_EQ(t.nodes[3].name, "vcB-n1");
  EXPECT_EQ(t.nodes[3].gpus, 4);
  EXPECT_EQ(t.end, Utc("2020-05-01 04:01:00"));
  ASSERT_EQ(t.gaps.size(), 1u);
  EXPECT_EQ(t.gaps[0].begin, Utc("2020-05-01 01:00:00"));
  EXPECT_EQ(t.gaps[0].end, Utc("2020-05-01 02:00:00"));

  std::vector<std::tuple<std::string, int, Gpus>> got;
  for (const DemandLevel& l : t.levels) {
    got.emplace_back(FormatUtc(l.t).substr(11, 5), l.pool, l.gpus);
  }
  std::vector<std::tuple<std::string, int, Gpus>> want = {
      {"00:00", 0, 14}, {"00:00", 1, 4}, {"00:30", 1, 0}, {"02:00", 0, 8},
      {"02:00", 1, 0},  // resumed: vcA's row at 02:00, vcB's 01:30 level
      {"03:00", 0, 0},  {"03:10", 0, 8}, {"04:00", 0, 8}, {"04:00", 1, 33},  // raw, not capped
  };
  EXPECT_EQ(got, want);
}

// Any Helios cluster reads: the files are found by their `*_vc_sequence*` and `*_gpu_number.csv`
// names, and none or several name the directory and the candidates.
TEST(HeliosReaderTest, AnyClusterDirectoryByFileNames) {
  TempDir dir;
  const std::string rows = std::string(kHeliosHeader) + HeliosRow("2020-09-01 00:00:00", "vcX", 1, 16, 8, 0) +
                           HeliosRow("2020-09-01 01:00:00", "vcX", 1, 16, 12, 2);
  dir.Write("notes.txt", "not a trace");
  Result<Trace> none = ReadHelios(dir.path(), ReadOptions{});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find(dir.path()), std::string::npos) << none.status().message();
  EXPECT_NE(none.status().message().find("no `*_vc_sequence*.csv`"), std::string::npos) << none.status().message();
  EXPECT_NE(none.status().message().find("`notes.txt`"), std::string::npos) << none.status().message();

  dir.Write("saturn_vc_sequence_2020-09.csv", rows);
  dir.Write("Saturn_gpu_number.csv", "date,vcX\n2020-09-01,16\n");
  Result<Trace> r = ReadHelios(dir.path(), ReadOptions{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->total_gpus(), 16);
  EXPECT_EQ(r->levels.size(), 2u);
  EXPECT_EQ(r->description.rfind("Helios Saturn (SenseTime)", 0), 0u) << r->description;

  dir.Write("venus_gpu_number.csv", "date,vcX\n");
  Result<Trace> two_numbers = ReadHelios(dir.path(), ReadOptions{});
  ASSERT_FALSE(two_numbers.ok());
  EXPECT_NE(two_numbers.status().message().find("`Saturn_gpu_number.csv`, `venus_gpu_number.csv`"), std::string::npos)
      << two_numbers.status().message();
  fs::remove(dir.path() + "/venus_gpu_number.csv");

  dir.Write("venus_vc_sequence.csv", rows);
  Result<Trace> two = ReadHelios(dir.path(), ReadOptions{});
  ASSERT_FALSE(two.ok());
  const std::string& m = two.status().message();
  EXPECT_NE(m.find(dir.path()), std::string::npos) << m;
  EXPECT_NE(m.find("several"), std::string::npos) << m;
  EXPECT_NE(m.find("`saturn_vc_sequence_2020-09.csv`, `venus_vc_sequence.csv`"), std::string::npos) << m;

  Result<Trace> missing = ReadHelios(dir.path() + "/nope", ReadOptions{});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("not a directory"), std::string::npos) << missing.status().message();
}

TEST(HeliosReaderTest, BadInputsNameFileLineAndField) {
  TempDir dir;
  const std::string file = dir.path() + "/" + kHeliosFile;
  const std::string good = HeliosRow("2020-05-01 00:00:00", "vcA", 1, 16, 8, 0);
  auto read = [&](const std::string& text) {
    dir.Write(kHeliosFile, text);
    return ReadHelios(dir.path(), ReadOptions{});
  };
  ASSERT_TRUE(read(std::string(kHeliosHeader) + good).ok());

  EXPECT_TRUE(FailsAt(
      read(std::string(kHeliosHeader) + good + "2020-05-01 00:01:00,vcA,1,0,16,abc,0,0.5\n"), file,
      3, "running_gpu_num"));
  EXPECT_TRUE(FailsAt(read(std::string(kHeliosHeader) + good + "2020-05-01 00:01:00,vcA,1,0,16\n"),
                      file, 3, "running_gpu_num"));
  Result<Trace> order =
      read(std::string(kHeliosHeader) + good + HeliosRow("2020-05-01 00:05:00", "vcB", 1, 8, 8, 0) +
           HeliosRow("2020-05-01 00:00:00", "vcA", 1, 16, 4, 0));
  EXPECT_TRUE(FailsAt(order, file, 4, "time"));
  EXPECT_NE(order.status().message().find("out of order"), std::string::npos);
  EXPECT_TRUE(
      FailsAt(read(std::string(kHeliosHeader) + good + "2020-05-01 25:00:00,vcA,1,0,16,8,0,0.5\n"),
              file, 3, "time"));
  EXPECT_TRUE(
      FailsAt(read(std::string(kHeliosHeader) + good + "2020-05-01 00:01:00,vcA,1,0,16,-8,0,0.5\n"),
              file, 3, "running_gpu_num"));
  EXPECT_TRUE(
      FailsAt(read("time,vc,running_job_num,pending_job_num,total_gpu_num,running_gpu_num\n" +
                   std::string("2020-05-01 00:00:00,vcA,1,0,16,8\n")),
              file, 1, "pending_gpu_num"));
  Result<Trace> empty = read("");
  EXPECT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find(file + ":1:"), std::string::npos);
  Result<Trace> header_only = read(kHeliosHeader);
  EXPECT_FALSE(header_only.ok());
  EXPECT_NE(header_only.status().message().find(file + ":2:"), std::string::npos);
  EXPECT_FALSE(read(Bytes("\x7f"
                          "ELF\x02\x01\x01\0\0\0\xff\xfe\n\x00\x01,,,\n"))
                   .ok());
}

// ---------------------------------------------------------------------------------------------
// Alibaba openb

double OfferedLoad(const Trace& t) {
  double gpu_ms = 0;
  for (const JobSpec& j : t.jobs) {
    gpu_ms += static_cast<double>(j.gpus) * static_cast<double>(j.duration.ms);
  }
  return gpu_ms / (static_cast<double>(t.total_gpus()) * static_cast<double>((t.end - t.begin).ms));
}

TEST(OpenbReaderTest, ResamplesToTheTargetLoad) {
  if (!fs::exists(kOpenbDir)) GTEST_SKIP() << "skipped: ../shared/data not present";
  Result<Trace> a = ReadTrace("openb:" + kOpenbDir, ReadOptions{});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->kind, DemandKind::kJobs);
  EXPECT_EQ(a->total_gpus(), 6212);
  EXPECT_EQ(a->nodes.size(), 1213u);
  ASSERT_EQ(a->pools.size(), 1u);
  EXPECT_EQ(a->pools[0].gpus, 6212);
  EXPECT_EQ(a->begin, Utc("2024-01-01T00:00:00"));
  EXPECT_EQ(a->end - a->begin, Duration::Hours(14 * 24));
  EXPECT_NE(a->description.find("0.70"), std::string::npos) << a->description;
  EXPECT_NE(a->description.find("seed 1"), std::string::npos) << a->description;
  const double load = OfferedLoad(*a);
  EXPECT_NEAR(load, 0.7, 0.07);
  ASSERT_GT(a->jobs.size(), 1000u);
  EXPECT_EQ(a->jobs[0].id.rfind("openb-0-openb-pod-", 0), 0u) << a->jobs[0].id;
  for (size_t i = 0; i < a->jobs.size(); ++i) {
    const JobSpec& j = a->jobs[i];
    ASSERT_GE(j.submit, a->begin);
    ASSERT_LT(j.submit, a->end);
    if (i > 0) {
      ASSERT_LE(a->jobs[i - 1].submit, j.submit);
    }
    ASSERT_GE(j.gpus, 1);
    ASSERT_LE(j.gpus, 8);
    ASSERT_GT(j.duration, Duration{});
    ASSERT_LE(j.duration, Duration::Hours(7 * 24));
  }

  Result<Trace> same = ReadOpenb(kOpenbDir, ReadOptions{});
  ASSERT_TRUE(same.ok());
  ASSERT_EQ(same->jobs.size(), a->jobs.size());
  for (size_t i = 0; i < a->jobs.size(); ++i) {
    ASSERT_EQ(same->jobs[i].id, a->jobs[i].id);
    ASSERT_EQ(same->jobs[i].submit, a->jobs[i].submit);
    ASSERT_EQ(same->jobs[i].duration, a->jobs[i].duration);
  }
  ReadOptions other;
  other.seed = 2;
  other.load_scale = 0.35;
  Result<Trace> b = ReadOpenb(kOpenbDir, other);
  ASSERT_TRUE(b.ok());
  EXPECT_NE(b->jobs[0].id, a->jobs[0].id);
  EXPECT_NE(b->jobs[0].submit, a->jobs[0].submit);
  EXPECT_NEAR(OfferedLoad(*b), 0.35, 0.035);
  EXPECT_NE(b->description.find("seed 2"), std::string::npos) << b->description;
}

TEST(OpenbReaderTest, SmallDirAndBadInputs) {
  TempDir dir;
  dir.Write("openb_node_list_gpu_node.csv",
            "sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,8,G2\nn1,1,1,0,\nn2,1,1,2,T4\n");
  const std::string pods_header =
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
      "deletion_time,scheduled_time\n";
  const std::string pods =
      dir.Write("openb_pod_list_default.csv",
                pods_header + "p0,1,1,1,1000,,LS,Running,0,3600,0\n" +
                    "p1,1,1,0,0,,LS,Running,0,100,0\n" +       // no GPU
                    "p2,1,1,8,1000,,BE,Pending,0,100,\n" +     // never scheduled
                    "p3,1,1,2,1000,,BE,Failed,10,7210,10\n");  // 2 GPUs for 2 h
  ReadOptions options;
  options.load_scale = 0.5;
  Result<Trace> t = ReadOpenb(dir.path(), options);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->total_gpus(), 10);
  EXPECT_EQ(t->nodes.size(), 2u);
  for (const JobSpec& j : t->jobs) {
    EXPECT_TRUE(j.id.ends_with("-p0") || j.id.ends_with("-p3")) << j.id;
  }
  EXPECT_NEAR(OfferedLoad(*t), 0.5, 0.1);

  dir.Write("openb_pod_list_default.csv", pods_header + "p0,1,1,x,1000,,LS,Running,0,3600,0\n");
  EXPECT_TRUE(FailsAt(ReadOpenb(dir.path(), options), pods, 2, "num_gpu"));
  dir.Write("openb_pod_list_default.csv", pods_header + "p0,1,1,1,1000,,LS,Running,0\n");
  EXPECT_TRUE(FailsAt(ReadOpenb(dir.path(), options), pods, 2, "deletion_time"));
  dir.Write("openb_pod_list_default.csv", pods_header + "p0,1,1,1,1000,,LS,Running,0,9e99,0\n");
  EXPECT_TRUE(FailsAt(ReadOpenb(dir.path(), options), pods, 2, "deletion_time"));
  dir.Write("openb_pod_list_default.csv", pods_header);
  EXPECT_FALSE(ReadOpenb(dir.path(), options).ok());
  options.load_scale = -1;
  EXPECT_FALSE(ReadOpenb(dir.path(), options).ok());
}

// ---------------------------------------------------------------------------------------------
// Slurm sacct

constexpr const char* kSacct =
    "JobID|JobName|Partition|Submit|Start|End|State|AllocTRES|ReqTRES\n"
    // A typed and untyped GPU entry: the untyped total counts once.
    "100|train|gpu|2024-03-01T10:00:00|2024-03-01T10:00:05|2024-03-01T12:00:05|COMPLETED|"
    "billing=64,cpu=64,gres/gpu=8,gres/gpu:a100=8,mem=512G,node=1|cpu=64,gres/gpu=8\n"
    "100.batch|batch||2024-03-01T10:00:05|2024-03-01T10:00:05|2024-03-01T12:00:05|COMPLETED|"
    "cpu=64,gres/gpu=8,mem=512G,node=1|\n"
    "100.0|python||2024-03-01T10:00:06|2024-03-01T10:00:06|2024-03-01T12:00:05|COMPLETED|"
    "cpu=64,gres/gpu=8|\n"
    // Typed only, two types; gres/gpumem is not a GPU count.
    "101|eval|gpu|2024-03-01T09:00:00|2024-03-01T11:00:00|2024-03-01T13:00:00|COMPLETED|"
    "cpu=8,gres/gpu:a100=2,gres/gpu:h100=2,gres/gpumem=80G|\n"
    // Never started.
    "102|wait|gpu|2024-03-01T11:00:00|Unknown|Unknown|PENDING||cpu=8,gres/gpu=4\n"
    "103|cancel|debug|2024-03-01T11:00:00|None|2024-03-01T11:05:00|CANCELLED||gres/gpu=1\n"
    // No AllocTRES (cancelled while pending): ReqTRES is used.
    "104|small|debug|2024-03-01T11:30:00|2024-03-01T11:31:00|2024-03-01T12:31:00|COMPLETED||"
    "cpu=4,gres/gpu=3\n"
    // No GPUs.
    "105|cpu|debug|2024-03-01T11:30:00|2024-03-01T11:31:00|2024-03-01T12:31:00|COMPLETED|"
    "cpu=4,mem=1G|cpu=4\n"
    // 12 GPUs across two nodes.
    "106|big|gpu|2024-03-01T11:40:00|2024-03-01T11:50:00|2024-03-01T13:50:00|COMPLETED|"
    "cpu=128,gres/gpu=12,node=2|\n";

TEST(SacctReaderTest, ReadsJobsPartitionsAndSizesTheFleet) {
  TempDir dir;
  const std::string file = dir.Write("sacct.txt", kSacct);
  Result<Trace> r = ReadTrace("sacct:" + file, ReadOptions{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Trace& t = *r;
  EXPECT_EQ(t.kind, DemandKind::kJobs);
  ASSERT_EQ(t.pools.size(), 2u);
  EXPECT_EQ(t.pools[0].name, "gpu");
  EXPECT_EQ(t.pools[1].name, "debug");
  ASSERT_EQ(t.jobs.size(), 4u);
  // Sorted by submit: 101 (09:00) before 100 (10:00).
  EXPECT_EQ(t.jobs[0].id, "101");
  EXPECT_EQ(t.jobs[0].gpus, 4);
  EXPECT_EQ(t.jobs[1].id, "100");
  EXPECT_EQ(t.jobs[1].gpus, 8);
  EXPECT_EQ(t.jobs[1].duration, Duration::Hours(2));
  EXPECT_EQ(t.jobs[1].submit, Utc("2024-03-01T10:00:00"));
  EXPECT_EQ(t.jobs[2].id, "104");
  EXPECT_EQ(t.jobs[2].gpus, 3);
  EXPECT_EQ(t.jobs[2].pool, 1);
  EXPECT_EQ(t.jobs[3].id, "106");
  EXPECT_EQ(t.jobs[3].gpus, 12);
  EXPECT_EQ(t.begin, Utc("2024-03-01T09:00:00"));
  EXPECT_EQ(t.end, Utc("2024-03-01T13:50:00"));
  EXPECT_NE(t.description.find("2 jobs without a Start or End skipped"), std::string::npos)
      << t.description;
  // gpu: peak 8 + 4 + 12 = 24 at 11:50 → 3 nodes; debug: 3 GPUs → 1 node.
  ASSERT_EQ(t.nodes.size(), 4u);
  EXPECT_EQ(t.pools[0].gpus, 24);
  EXPECT_EQ(t.pools[1].gpus, 8);
  EXPECT_EQ(t.nodes[2].name, "gpu-n2");
  EXPECT_EQ(t.nodes[3].name, "debug-n0");
  EXPECT_EQ(t.nodes[3].pool, 1);
  EXPECT_EQ(t.nodes[3].model, "H100");

  // A fixed fleet: each pool gets its largest job's nodes, the rest follows the peaks.
  ReadOptions fixed;
  fixed.fleet.nodes = 10;
  fixed.fleet.gpus_per_node = 4;
  fixed.fleet.nodes_per_rack = 3;
  fixed.fleet.model = "A100";
  Result<Trace> f = ReadSacct(file, fixed);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_EQ(f->nodes.size(), 10u);
  EXPECT_EQ(f->total_gpus(), 40);
  EXPECT_GE(f->pools[0].gpus, 24);
  EXPECT_GE(f->pools[1].gpus, 4);
  EXPECT_EQ(f->nodes[9].rack, 3);
  EXPECT_EQ(f->nodes[9].model, "A100");
  fixed.fleet.nodes = 3;  // 12 GPUs need 3 nodes of 4, plus one for debug
  EXPECT_FALSE(ReadSacct(file, fixed).ok());
}

TEST(SacctReaderTest, BadInputsNameFileLineAndField) {
  TempDir dir;
  const std::string header = "JobID|Partition|Submit|Start|End|AllocTRES\n";
  const std::string file = dir.path() + "/s.txt";
  auto read = [&](const std::string& text) {
    dir.Write("s.txt", text);
    return ReadSacct(file, ReadOptions{});
  };
  const std::string ok =
      "1|p|2024-03-01T10:00:00|2024-03-01T10:00:00|2024-03-01T11:00:00|gres/gpu=1\n";
  ASSERT_TRUE(read(header + ok).ok());
  EXPECT_TRUE(
      FailsAt(read(header + ok +
                   "2|p|2024-03-01T10:00:00|2024-03-01T12:00:00|2024-03-01T11:00:00|gres/gpu=1\n"),
              file, 3, "End"));
  EXPECT_TRUE(
      FailsAt(read(header + ok +
                   "2|p|2024-03-01T13:00:00|2024-03-01T12:00:00|2024-03-01T14:00:00|gres/gpu=1\n"),
              file, 3, "Submit"));
  EXPECT_TRUE(
      FailsAt(read(header + ok +
                   "2|p|2024-03-01T10:00:00|2024-03-01T12:00:00|2024-03-01T14:00:00|gres/gpu=x\n"),
              file, 3, "AllocTRES"));
  EXPECT_TRUE(FailsAt(
      read(header + ok + "2|p|yesterday|2024-03-01T12:00:00|2024-03-01T14:00:00|gres/gpu=1\n"),
      file, 3, "Submit"));
  EXPECT_TRUE(FailsAt(read(header + ok + "2|p|2024-03-01T10:00:00\n"), file, 3, "Start"));
  EXPECT_TRUE(FailsAt(read("JobID|Partition|Submit|Start|End\n" + ok), file, 1, "AllocTRES"));
  EXPECT_TRUE(FailsAt(read("JobID|Partition|Submit|End|AllocTRES\n" + ok), file, 1, "Start"));
  EXPECT_FALSE(read("").ok());
  Result<Trace> header_only = read(header);
  EXPECT_FALSE(header_only.ok());
  EXPECT_NE(header_only.status().message().find(file + ":2:"), std::string::npos);
  EXPECT_FALSE(read(Bytes("\0\1\2|\xff\xfe\n\x80|||||\n")).ok());
}

// ---------------------------------------------------------------------------------------------
// Job CSV

TEST(JobCsvReaderTest, ReadsAGoodFile) {
  TempDir dir;
  const std::string file = dir.Write("jobs.csv",
                                     "submit_s,gpus,duration_s,priority\n"
                                     "# a comment\n"
                                     "\n"
                                     "0,8,3600\n"
                                     "0, 4, 1800.5, 2\r\n"
                                     "60,16,60");
  Result<Trace> r = ReadTrace("csv:" + file, ReadOptions{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Trace& t = *r;
  EXPECT_EQ(t.spec, "csv:" + file);
  ASSERT_EQ(t.jobs.size(), 3u);
  EXPECT_EQ(t.jobs[0].id, "job-4");
  EXPECT_EQ(t.jobs[1].id, "job-5");
  EXPECT_EQ(t.jobs[1].priority, 2);
  EXPECT_EQ(t.jobs[1].duration, Duration::Millis(1'800'500));
  EXPECT_EQ(t.jobs[2].submit, Utc("2024-01-01T00:01:00"));
  EXPECT_EQ(t.jobs[2].gpus, 16);
  EXPECT_EQ(t.begin, Utc("2024-01-01T00:00:00"));
  EXPECT_EQ(t.end, Utc("2024-01-01T01:00:00"));
  ASSERT_EQ(t.pools.size(), 1u);
  EXPECT_EQ(t.pools[0].name, "default");
  // Peak 8 + 4 + 16 = 28 GPUs at 60 s: 4 nodes of 8.
  EXPECT_EQ(t.nodes.size(), 4u);
  EXPECT_EQ(t.total_gpus(), 32);
  EXPECT_EQ(t.nodes[0].name, "default-n0");
}

TEST(JobCsvReaderTest, BadInputsNameFileLineAndField) {
  TempDir dir;
  const std::string file = dir.path() + "/j.csv";
  auto read = [&](const std::string& text) {
    dir.Write("j.csv", text);
    return ReadJobCsv(file, ReadOptions{});
  };
  EXPECT_TRUE(FailsAt(read("0,8,60\n1,abc,60\n"), file, 2, "gpus"));
  EXPECT_TRUE(FailsAt(read("0,8,60\nx1,8,60\n"), file, 2, "submit_s"));
  EXPECT_TRUE(FailsAt(read("0,8,60\n1,8\n"), file, 2, "duration_s"));
  EXPECT_TRUE(FailsAt(read("0,8,60\n1\n"), file, 2, "gpus"));
  EXPECT_TRUE(FailsAt(read("0,8,60\n10,8,60\n5,8,60\n"), file, 3, "submit_s"));
  EXPECT_TRUE(FailsAt(read("0,8,-60\n"), file, 1, "duration_s"));
  EXPECT_TRUE(FailsAt(read("0,8,0\n"), file, 1, "duration_s"));
  EXPECT_TRUE(FailsAt(read("0,0,60\n"), file, 1, "gpus"));
  EXPECT_TRUE(FailsAt(read("0,2000000000,60\n"), file, 1, "gpus"));  // no 250M-node fleet
  EXPECT_TRUE(FailsAt(read("-1,8,60\n"), file, 1, "submit_s"));
  EXPECT_TRUE(FailsAt(read("0,8,60,high\n"), file, 1, "priority"));
  EXPECT_FALSE(read("0,8,60,1,extra\n").ok());
  EXPECT_TRUE(FailsAt(read(""), file, 1, "submit_s"));
  EXPECT_TRUE(FailsAt(read("submit_s,gpus,duration_s\n"), file, 2, "submit_s"));
  EXPECT_TRUE(FailsAt(read("# only a comment\n\n"), file, 3, "submit_s"));
  EXPECT_TRUE(FailsAt(read(Bytes("\x7f"
                                 "ELF\x02\x01\x01\0\0\0\xff\xfe\x00\x01\n")),
                      file, 1, "submit_s"));
  // A directory is not a file.
  EXPECT_FALSE(ReadJobCsv(dir.path(), ReadOptions{}).ok());
}

// Random corruptions of valid files: any result is fine, a crash or sanitizer report is not.
TEST(TraceReaderTest, SurvivesCorruptedInputs) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"jobs.csv", "submit_s,gpus,duration_s\n0,8,3600\n10,4,60,1\n"},
      {"sacct.txt", kSacct},
      {kHeliosFile, std::string(kHeliosHeader) +
                        HeliosRow("2020-05-01 00:00:00", "vcA", 1, 16, 8, 0) +
                        HeliosRow("2020-05-01 00:01:00", "vcA", 0, 16, 0, 0)},
      {"m.jsonl",
       "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 2, \"hash_ids\": [0]}\n"
       "{\"timestamp\": 3000, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": []}\n"},
      {"AzureLLMInferenceTrace_x.csv",
       "TIMESTAMP,ContextTokens,GeneratedTokens\r\n2023-11-16 18:17:03.9799600,4808,10\r\n"},
  };
  Rng rng(42);
  for (const auto& [name, text] : seeds) {
    for (int round = 0; round < 300; ++round) {
      std::string bad = text;
      const int edits = 1 + static_cast<int>(rng.Below(4));
      for (int e = 0; e < edits && !bad.empty(); ++e) {
        const size_t at = rng.Below(bad.size());
        switch (rng.Below(4)) {
          case 0:
            bad[at] = static_cast<char>(rng.Below(256));
            break;
          case 1:
            bad.erase(at, 1 + rng.Below(8));
            break;
          case 2:
            bad.insert(at, 1, "|,{}\":\n\r0-.9"[rng.Below(13)]);
            break;
          default:
            bad.resize(at);
            break;
        }
      }
      const std::string file = dir.Write(name, bad);
      ReadOptions options;
      if (name == "jobs.csv") (void)ReadJobCsv(file, options);
      if (name == "sacct.txt") (void)ReadSacct(file, options);
      if (name == kHeliosFile) (void)ReadHelios(dir.path(), options);
      if (name == "m.jsonl") (void)ReadLlmTrace("mooncake:" + file);
      if (name.starts_with("Azure")) (void)ReadLlmTrace("azure:" + file);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// LLM request traces

TEST(LlmTraceTest, AzureDirectoryMergesBothServices) {
  Result<LlmTrace> r = ReadLlmTrace("azure:" + kAzureDir);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->spec, "azure:" + kAzureDir);
  ASSERT_EQ(r->requests.size(), 28'185u);
  EXPECT_EQ(r->requests.front().offset, Duration{});
  // conv starts 18:15:46.680, code ends 19:14:19.928: 3,513.2 s.
  EXPECT_NEAR(r->span.seconds(), 3513.2, 0.1);
  EXPECT_EQ(r->span, r->requests.back().offset);
  EXPECT_EQ(r->requests.front().input_tokens, 374);  // conv's first row
  EXPECT_EQ(r->requests.front().output_tokens, 44);
  for (size_t i = 1; i < r->requests.size(); ++i) {
    ASSERT_LE(r->requests[i - 1].offset, r->requests[i].offset);
  }
  Result<LlmTrace> code = ReadLlmTrace("azure:" + kAzureDir + "/AzureLLMInferenceTrace_code.csv");
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(code->requests.size(), 8'819u);
  EXPECT_NEAR(code->span.seconds(), 3435.9, 0.1);
}

TEST(LlmTraceTest, MooncakeConversationTrace) {
  Result<LlmTrace> r = ReadLlmTrace("mooncake:" + kMooncake);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->requests.size(), 12'031u);
  EXPECT_NEAR(r->span.seconds(), 3537, 1);
  EXPECT_EQ(r->requests[0].input_tokens, 6758);
  EXPECT_EQ(r->requests[0].output_tokens, 500);
  double input = 0;
  for (const LlmRequest& q : r->requests) input += static_cast<double>(q.input_tokens);
  EXPECT_NEAR(input / static_cast<double>(r->requests.size()), 12035.1, 0.1);
}

TEST(LlmTraceTest, BadInputsNameFileLineAndField) {
  TempDir dir;
  const std::string good = "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 2}\n";
  const std::string m = dir.path() + "/m.jsonl";
  auto mooncake = [&](const std::string& text) {
    dir.Write("m.jsonl", text);
    return ReadLlmTrace("mooncake:" + m);
  };
  ASSERT_TRUE(mooncake(good).ok());
  // simdjson rejects a truncated object before any field is read: the first required one is named.
  EXPECT_TRUE(
      FailsAt(mooncake(good + "{\"timestamp\": 5, \"input_length\": \n"), m, 2, "timestamp"));
  EXPECT_TRUE(
      FailsAt(mooncake(good + "{\"timestamp\": 5, \"input_length\": 7x, \"output_length\": 2}\n"),
              m, 2, "input_length"));
  EXPECT_TRUE(FailsAt(mooncake(good + "not json\n"), m, 2, "timestamp"));
  EXPECT_TRUE(FailsAt(mooncake(good + "[1, 2]\n"), m, 2, "timestamp"));
  EXPECT_TRUE(FailsAt(
      mooncake(good + "{\"timestamp\": 5, \"input_length\": \"ten\", \"output_length\": 2}\n"), m,
      2, "input_length"));
  EXPECT_TRUE(
      FailsAt(mooncake(good + "{\"timestamp\": 5, \"input_length\": 1.5, \"output_length\": 2}\n"),
              m, 2, "input_length"));
  EXPECT_TRUE(
      FailsAt(mooncake(good + "{\"timestamp\": 5, \"input_length\": -1, \"output_length\": 2}\n"),
              m, 2, "input_length"));
  EXPECT_TRUE(
      FailsAt(mooncake(good + "{\"timestamp\": \"x\", \"input_length\": 1}\n"), m, 2, "timestamp"));
  EXPECT_TRUE(
      FailsAt(mooncake(good + "{\"timestamp\": 5, \"input_length\": 1}\n"), m, 2, "output_length"));
  EXPECT_TRUE(FailsAt(mooncake(""), m, 1, "timestamp"));
  EXPECT_TRUE(FailsAt(mooncake(Bytes("\xff\xfe\0{\"")), m, 1, "timestamp"));
  // Blank lines and a missing final newline are fine; span is at least a second.
  Result<LlmTrace> one = mooncake("\n" + good.substr(0, good.size() - 1));
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(one->span, Duration::Seconds(1));

  const std::string header = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n";
  const std::string row = "2023-11-16 18:17:03.9799600,4808,10\r\n";
  const std::string a = dir.path() + "/a.csv";
  auto azure = [&](const std::string& text) {
    dir.Write("a.csv", text);
    return ReadLlmTrace("azure:" + a);
  };
  ASSERT_TRUE(azure(header + row).ok());
  EXPECT_TRUE(
      FailsAt(azure(header + row + "2023-11-16 18:17:04.0,4x08,10\r\n"), a, 3, "ContextTokens"));
  EXPECT_TRUE(
      FailsAt(azure(header + row + "2023-11-16 18:17:04.0,48\r\n"), a, 3, "GeneratedTokens"));
  EXPECT_TRUE(FailsAt(azure(header + row + "16/11/2023 18:17,48,1\r\n"), a, 3, "TIMESTAMP"));
  EXPECT_TRUE(FailsAt(azure("TIMESTAMP,GeneratedTokens\r\n" + row), a, 1, "ContextTokens"));
  EXPECT_FALSE(azure("").ok());
  EXPECT_FALSE(azure(header).ok());

  EXPECT_FALSE(ReadLlmTrace("burstgpt:x").ok());
  EXPECT_FALSE(ReadLlmTrace("azure:").ok());
  EXPECT_EQ(ReadLlmTrace("azure:" + dir.path() + "/missing.csv").status().code(),
            StatusCode::kIoError);
  EXPECT_EQ(ReadLlmTrace("azure:" + dir.path()).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ll::sim
