// The slurm backend's parsing of the Slurm clients' output and its configuration check (the
// daemons themselves are exercised by tests/slurm).
#include "fleet/slurm/slurm_check.h"
#include "fleet/slurm/slurm_json.h"

#include <gtest/gtest.h>

namespace ll::fleet {
namespace {

TEST(SlurmHostlist, ExpandsRangesListsAndPadding) {
  auto h = ExpandHostlist("n[1-3,5],gpu[08-10],login");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(*h, (std::vector<std::string>{"n1", "n2", "n3", "n5", "gpu08", "gpu09", "gpu10", "login"}));
  EXPECT_TRUE(ExpandHostlist("")->empty());
  for (const char* bad : {"n[1-", "n[3-1]", "n[a-b]", "n]1["}) {
    EXPECT_FALSE(ExpandHostlist(bad).ok()) << bad;
  }
}

constexpr const char* kSinfo = R"J({"meta": {}, "errors": [], "nodes": [
  {"name": "n1", "state": "idle", "state_flags": [], "gres": "gpu:8", "partitions": ["internal", "landlord"]},
  {"name": "n2", "state": "mixed", "state_flags": ["DRAIN"], "gres": "gpu:h100:8(S:0-1)", "partitions": ["landlord"]},
  {"name": "n3", "state": "down", "state_flags": [], "gres": "gpu:4", "partitions": ["landlord"]},
  {"name": "cpu1", "state": "idle", "state_flags": [], "gres": "", "partitions": ["internal"]}]})J";

TEST(SlurmSinfo, NodesOfThePartitionWithGpusAndUsability) {
  auto n = ParseSinfoJson(kSinfo, "landlord");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(n->size(), 3u);
  EXPECT_EQ((*n)[0].name, "n1");
  EXPECT_EQ((*n)[0].gpus, 8);
  EXPECT_TRUE((*n)[0].usable);
  EXPECT_EQ((*n)[1].gpus, 8);
  EXPECT_FALSE((*n)[1].usable) << "drained";
  EXPECT_EQ((*n)[2].gpus, 4);
  EXPECT_FALSE((*n)[2].usable) << "down";
  EXPECT_FALSE(ParseSinfoJson("not json", "landlord").ok());
  // slurmctld unreachable: the client exits 0 with an error and no nodes.
  auto down = ParseSinfoJson(R"J({"errors": [{"error": "Unspecified error", "errno": -1}], "nodes": []})J", "landlord");
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable);
}

TEST(SlurmSqueue, JobsWithExpandedNodesGpusAndEnds) {
  auto j = ParseSqueueJson(R"J({"errors": [], "jobs": [
    {"job_id": 7, "name": "ll_lease_000001", "job_state": "RUNNING", "partition": "landlord", "nodes": "n[1-2]",
     "tres_per_node": "gres:gpu:8", "end_time": 1999999999, "exit_code": 0},
    {"job_id": 8, "name": "train", "job_state": "CANCELLED", "partition": "internal", "nodes": "n3",
     "tres_per_node": "gres:gpu:2", "end_time": 1796055356, "exit_code": 15}]})J");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  ASSERT_EQ(j->size(), 2u);
  EXPECT_EQ((*j)[0].nodes, (std::vector<std::string>{"n1", "n2"}));
  EXPECT_EQ((*j)[0].gpus_per_node, 8);
  EXPECT_EQ((*j)[0].end.ms, 0) << "a running job's end_time is its limit, not an end";
  EXPECT_EQ((*j)[1].end, Time::FromSeconds(1796055356));
  EXPECT_EQ((*j)[1].gpus_per_node, 2);
  EXPECT_EQ((*j)[0].preempted.ms, 0) << "not preempted: preempt_time absent";
  // In its grace time a preempted job runs on with preempt_time set (the grace start).
  auto grace = ParseSqueueJson(R"J({"jobs": [{"job_id": 9, "name": "ll_lease_000002", "job_state": "RUNNING",
    "partition": "landlord", "nodes": "n4", "preempt_time": 1796234639, "end_time": 1796234659}]})J");
  ASSERT_TRUE(grace.ok()) << grace.status().ToString();
  EXPECT_EQ((*grace)[0].preempted, Time::FromSeconds(1796234639));
  auto down = ParseSqueueJson(R"J({"errors": [{"description": "Failed while looking for jobs", "error": "x"}], "jobs": []})J");
  ASSERT_FALSE(down.ok());
  EXPECT_NE(down.status().message().find("Failed while looking for jobs"), std::string::npos);
}

constexpr const char* kGoodConfig =
    "PreemptMode             = CANCEL\nPreemptType             = preempt/partition_prio\n"
    "SelectType              = select/cons_tres\n";
constexpr const char* kGoodParts =
    "PartitionName=internal Nodes=n[1-4] PriorityTier=10 GraceTime=0 PreemptMode=CANCEL State=UP\n"
    "PartitionName=landlord Nodes=n[1-4] PriorityTier=1 GraceTime=120 PreemptMode=CANCEL State=UP\n";

TEST(SlurmCheck, ARightClusterHasNoProblems) {
  EXPECT_TRUE(CheckSlurmConfig(kGoodConfig, kGoodParts, "landlord", Duration::Seconds(120)).empty());
}

TEST(SlurmCheck, EveryProblemNamesTheExactChange) {
  auto p = CheckSlurmConfig("PreemptType             = preempt/none\nPreemptMode             = OFF\n"
                            "SelectType              = select/linear\n",
                            "PartitionName=internal Nodes=n[1-4] PriorityTier=1 GraceTime=0\n"
                            "PartitionName=landlord Nodes=n[1-4] PriorityTier=1 GraceTime=30 PreemptMode=REQUEUE\n",
                            "landlord", Duration::Seconds(120));
  std::string all;
  for (const auto& s : p) all += s + "\n";
  EXPECT_EQ(p.size(), 6u) << all;
  EXPECT_NE(all.find("set `PreemptType=preempt/partition_prio`"), std::string::npos) << all;
  EXPECT_NE(all.find("set `PreemptMode=CANCEL`"), std::string::npos) << all;
  EXPECT_NE(all.find("set `SelectType=select/cons_tres`"), std::string::npos) << all;
  EXPECT_NE(all.find("set `GraceTime=120`"), std::string::npos) << all;
  EXPECT_NE(all.find("set `PriorityTier=2` on `internal`"), std::string::npos) << all;
  auto none = CheckSlurmConfig(kGoodConfig, kGoodParts, "sell", Duration::Seconds(120));
  ASSERT_EQ(none.size(), 1u);
  EXPECT_NE(none[0].find("no partition `sell`: add `PartitionName=sell"), std::string::npos) << none[0];
}

// A holder Slurm is signalling at preemption (squeue's SIGNALING) still holds its nodes: taking
// it for ended ended the lease at once, without its notice.
TEST(SlurmJobState, OnlyEndStatesAreTerminal) {
  for (const char* s : {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY"})
    EXPECT_TRUE(Terminal(s)) << s;
  for (const char* s : {"PENDING", "RUNNING", "SIGNALING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STAGE_OUT"})
    EXPECT_FALSE(Terminal(s)) << s;
}

}  // namespace
}  // namespace ll::fleet
