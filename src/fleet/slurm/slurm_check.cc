#include "fleet/slurm/slurm_check.h"

#include <fmt/format.h>

#include <cstdlib>
#include <sstream>

#include "fleet/slurm/commands.h"

namespace ll::fleet {

using slurm::Call;
using slurm::Trim;

namespace {

// `scontrol show config`'s value of `key` ("Key = value" lines); empty when absent.
std::string ConfigValue(const std::string& config, const std::string& key) {
  std::stringstream ss(config);
  std::string line;
  while (std::getline(ss, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = Trim(line.substr(0, eq));
    while (!k.empty() && k.back() == ' ') k.pop_back();
    if (k == key) {
      std::string v = line.substr(eq + 1);
      v.erase(0, v.find_first_not_of(' '));
      return Trim(v);
    }
  }
  return "";
}

// What the whole cluster must do: preempt by partition priority, cancel, allocate GPUs as TRES.
void CheckCluster(const std::string& config, const std::string& landlord,
                  std::vector<std::string>* problems) {
  auto value = [&](const std::string& key) { return ConfigValue(config, key); };
  if (value("PreemptType") != "preempt/partition_prio") {
    problems->push_back(fmt::format(
        "slurm.conf: PreemptType is `{}`: set `PreemptType=preempt/partition_prio` (the "
        "owner's partitions preempt the `{}` partition)",
        value("PreemptType"), landlord));
  }
  if (value("PreemptMode").find("CANCEL") == std::string::npos) {
    problems->push_back(
        fmt::format("slurm.conf: PreemptMode is `{}`: set `PreemptMode=CANCEL` (a preempted lease "
                    "ends after its grace time; it is not suspended or requeued)",
                    value("PreemptMode")));
  }
  if (value("SelectType") != "select/cons_tres") {
    problems->push_back(
        fmt::format("slurm.conf: SelectType is `{}`: set `SelectType=select/cons_tres` (GPUs are "
                    "allocated as gres/gpu)",
                    value("SelectType")));
  }
}

// A partition of `scontrol show partition --oneliner`.
struct Part {
  std::string name, nodes;
  int tier = 0;
  int64_t grace = 0;
  std::string mode;
};

std::vector<Part> ParsePartitions(const std::string& partitions) {
  std::vector<Part> parts;
  std::stringstream ss(partitions);
  std::string line;
  while (std::getline(ss, line)) {
    Part p;
    std::stringstream fields(line);
    std::string f;
    while (fields >> f) {
      const size_t eq = f.find('=');
      if (eq == std::string::npos) continue;
      const std::string k = f.substr(0, eq), v = f.substr(eq + 1);
      if (k == "PartitionName") p.name = v;
      if (k == "Nodes") p.nodes = v;
      if (k == "PriorityTier") p.tier = std::atoi(v.c_str());
      if (k == "GraceTime") p.grace = std::atoll(v.c_str());
      if (k == "PreemptMode") p.mode = v;
    }
    if (!p.name.empty()) parts.push_back(p);
  }
  return parts;
}

// The landlord partition `ll` against the notice and the owner's partitions in `parts`.
void CheckPartitions(const std::vector<Part>& parts, const Part* ll, const std::string& landlord,
                     Duration notice, std::vector<std::string>* problems) {
  if (ll->grace != notice.ms / 1000) {
    problems->push_back(
        fmt::format("slurm.conf: partition `{}` has GraceTime={}: set `GraceTime={}` (the reclaim "
                    "notice, `policy.notice_s`)",
                    landlord, ll->grace, notice.ms / 1000));
  }
  if (!ll->mode.empty() && ll->mode.find("CANCEL") == std::string::npos) {
    problems->push_back(
        fmt::format("slurm.conf: partition `{}` has PreemptMode={}: set `PreemptMode=CANCEL`",
                    landlord, ll->mode));
  }
  for (const Part& p : parts) {
    if (&p == ll) continue;
    if (p.tier <= ll->tier) {
      problems->push_back(fmt::format(
          "slurm.conf: the owner's partition `{}` has PriorityTier={}, not above `{}`'s "
          "{}: set `PriorityTier={}` on `{}` (or lower `{}`'s) so that its jobs preempt "
          "leases",
          p.name, p.tier, landlord, ll->tier, ll->tier + 1, p.name, landlord));
    }
  }
}

}  // namespace

std::vector<std::string> CheckSlurmConfig(const std::string& config, const std::string& partitions,
                                          const std::string& landlord, Duration notice) {
  std::vector<std::string> problems;
  CheckCluster(config, landlord, &problems);
  // Partitions: `scontrol show partition --oneliner`, one per line.
  const std::vector<Part> parts = ParsePartitions(partitions);
  const Part* ll = nullptr;
  for (const Part& p : parts) {
    if (p.name == landlord) ll = &p;
  }
  if (ll == nullptr) {
    problems.push_back(fmt::format(
        "slurm.conf: no partition `{}`: add `PartitionName={} Nodes=<the nodes to sell> "
        "PriorityTier=1 GraceTime={} PreemptMode=CANCEL MaxTime=INFINITE State=UP`",
        landlord, landlord, notice.ms / 1000));
    return problems;
  }
  CheckPartitions(parts, ll, landlord, notice, &problems);
  return problems;
}

Result<std::vector<std::string>> CheckSlurm(const std::string& landlord_partition,
                                            Duration notice) {
  LL_ASSIGN_OR_RETURN(std::string config, Call({"scontrol", "show", "config"}));
  LL_ASSIGN_OR_RETURN(std::string parts, Call({"scontrol", "show", "partition", "--oneliner"}));
  return CheckSlurmConfig(config, parts, landlord_partition, notice);
}

}  // namespace ll::fleet
