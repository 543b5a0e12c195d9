#include "fleet/slurm/slurm_json.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

namespace ll::fleet {
namespace {

using nlohmann::json;

// GPUs in a gres string: "gpu:8", "gpu:h100:8", "gpu:8(S:0-1)", "gres:gpu:8"; 0 if none.
Gpus GpusOf(const std::string& gres) {
  Gpus total = 0;
  std::stringstream ss(gres);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.rfind("gres:", 0) == 0) item = item.substr(5);
    if (item.rfind("gres/", 0) == 0) item = item.substr(5);
    if (item.rfind("gpu", 0) != 0) continue;
    item = item.substr(0, item.find('('));
    const size_t colon = item.rfind(':');
    if (colon == std::string::npos) {
      total += 1;
      continue;
    }
    Gpus n = 0;
    const std::string count = item.substr(colon + 1);
    auto [p, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
    if (ec == std::errc() && p == count.data() + count.size()) total += n;
  }
  return total;
}

}  // namespace

Result<std::vector<std::string>> ExpandHostlist(const std::string& list) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < list.size()) {
    // One item: prefix[ranges]suffix? up to a top-level comma.
    size_t end = i;
    int depth = 0;
    while (end < list.size() && (depth > 0 || list[end] != ',')) {
      if (list[end] == '[') ++depth;
      if (list[end] == ']') --depth;
      if (depth < 0) return Status::Invalid(fmt::format("hostlist `{}`: unbalanced `]`", list));
      ++end;
    }
    if (depth != 0) return Status::Invalid(fmt::format("hostlist `{}`: unbalanced `[`", list));
    const std::string item = list.substr(i, end - i);
    const size_t open = item.find('[');
    if (open == std::string::npos) {
      if (!item.empty()) out.push_back(item);
    } else {
      const size_t close = item.find(']', open);
      const std::string prefix = item.substr(0, open), suffix = item.substr(close + 1);
      std::stringstream ranges(item.substr(open + 1, close - open - 1));
      std::string r;
      while (std::getline(ranges, r, ',')) {
        const size_t dash = r.find('-');
        const std::string a = r.substr(0, dash),
                          b = dash == std::string::npos ? a : r.substr(dash + 1);
        int64_t lo = 0, hi = 0;
        auto pa = std::from_chars(a.data(), a.data() + a.size(), lo);
        auto pb = std::from_chars(b.data(), b.data() + b.size(), hi);
        if (a.empty() || pa.ec != std::errc() || pb.ec != std::errc() ||
            pa.ptr != a.data() + a.size() || pb.ptr != b.data() + b.size() || hi < lo ||
            hi - lo > 100'000) {
          return Status::Invalid(fmt::format("hostlist `{}`: bad range `{}`", list, r));
        }
        for (int64_t v = lo; v <= hi; ++v)
          out.push_back(fmt::format("{}{:0{}}{}", prefix, v, a.size(), suffix));
      }
    }
    i = end + 1;
  }
  return out;
}

namespace {

// The `errors` a client's JSON reports (slurmctld unreachable: exit 0, an error, no data).
Status ClientErrors(const json& j, const char* what) {
  if (!j.contains("errors") || !j["errors"].is_array() || j["errors"].empty()) return Status::Ok();
  const json& e = j["errors"][0];
  std::string msg = e.contains("description") && e["description"].is_string()
                        ? e["description"].get<std::string>() + ": "
                        : "";
  msg += e.contains("error") && e["error"].is_string() ? e["error"].get<std::string>() : e.dump();
  return Status::Unavailable(fmt::format("{}: {}", what, msg));
}

}  // namespace

Result<std::vector<SlurmNode>> ParseSinfoJson(const std::string& text,
                                              const std::string& partition) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("nodes") || !j["nodes"].is_array()) {
    return Status::Invalid("sinfo --json: not the expected JSON (no `nodes` array)");
  }
  LL_RETURN_IF_ERROR(ClientErrors(j, "sinfo --json"));
  std::vector<SlurmNode> out;
  for (const json& n : j["nodes"]) {
    if (!n.contains("name") || !n["name"].is_string())
      return Status::Invalid("sinfo --json: a node without a name");
    bool in = false;
    if (n.contains("partitions") && n["partitions"].is_array()) {
      for (const json& p : n["partitions"])
        in = in || (p.is_string() && p.get<std::string>() == partition);
    }
    if (!in) continue;
    SlurmNode node;
    node.name = n["name"].get<std::string>();
    node.gpus =
        n.contains("gres") && n["gres"].is_string() ? GpusOf(n["gres"].get<std::string>()) : 0;
    node.state =
        n.contains("state") && n["state"].is_string() ? n["state"].get<std::string>() : "unknown";
    node.address = n.contains("address") && n["address"].is_string()
                       ? n["address"].get<std::string>()
                       : node.name;
    std::string s = node.state;
    std::transform(s.begin(), s.end(), s.begin(), ::tolower);
    node.usable = s != "down" && s != "unknown" && s != "error" && s != "future";
    if (n.contains("state_flags") && n["state_flags"].is_array()) {
      for (const json& f : n["state_flags"]) {
        const std::string flag = f.is_string() ? f.get<std::string>() : "";
        if (flag == "DRAIN" || flag == "FAIL" || flag == "NOT_RESPONDING" ||
            flag == "MAINTENANCE" || flag == "POWERED_DOWN" || flag == "REBOOT_REQUESTED") {
          node.usable = false;
        }
      }
    }
    out.push_back(std::move(node));
  }
  return out;
}

Result<std::vector<SlurmJob>> ParseSqueueJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("jobs") || !j["jobs"].is_array()) {
    return Status::Invalid("squeue --json: not the expected JSON (no `jobs` array)");
  }
  LL_RETURN_IF_ERROR(ClientErrors(j, "squeue --json (slurmctld)"));
  std::vector<SlurmJob> out;
  auto str = [](const json& o, const char* k) {
    return o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : std::string();
  };
  auto num = [](const json& o, const char* k) -> int64_t {
    return o.contains(k) && o[k].is_number_integer() ? o[k].get<int64_t>() : 0;
  };
  for (const json& x : j["jobs"]) {
    SlurmJob job;
    job.id = num(x, "job_id");
    job.name = str(x, "name");
    job.state = str(x, "job_state");
    job.partition = str(x, "partition");
    LL_ASSIGN_OR_RETURN(job.nodes, ExpandHostlist(str(x, "nodes")));
    job.gpus_per_node = GpusOf(str(x, "tres_per_node"));
    if (Terminal(job.state) && num(x, "end_time") > 0)
      job.end = Time::FromSeconds(num(x, "end_time"));
    if (num(x, "preempt_time") > 0) job.preempted = Time::FromSeconds(num(x, "preempt_time"));
    job.exit_code = static_cast<int>(num(x, "exit_code"));
    out.push_back(std::move(job));
  }
  return out;
}

// The end states by name: anything else (SIGNALING while Slurm signals a job it preempts,
// STAGE_OUT, a state a later Slurm adds) still holds its nodes.
bool Terminal(const std::string& state) {
  static const char* const kEnded[] = {"COMPLETED", "CANCELLED", "FAILED",        "TIMEOUT",
                                       "PREEMPTED", "NODE_FAIL", "BOOT_FAIL",     "DEADLINE",
                                       "REVOKED",   "SPECIAL_EXIT", "OUT_OF_MEMORY"};
  return std::any_of(std::begin(kEnded), std::end(kEnded), [&](const char* s) { return state == s; });
}

}  // namespace ll::fleet
