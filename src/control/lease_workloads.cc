// A lease's workload on the sim fleet: the unit of work of its status changes, and its status
// as the lease shows it. Starting, noticing and stopping it with its lease, and its events
// (`workload_started`, `workload_exited`), are control::Leases' (lease_records.cc).
#include <fmt/format.h>

#include "control/control_plane.h"

namespace ll::control {

using nlohmann::json;

void ControlPlane::UseWorkloads(control::Workloads* w) {
  leases_.UseWorkloads(w);
  if (w != nullptr) w->SetListener([this](const std::string& id, const workload::WorkloadStatus& s) { OnWorkload(id, s); });
}

void ControlPlane::OnWorkload(const std::string& lease_id, const workload::WorkloadStatus& s) {
  auto i = book().IndexOf(lease_id);
  if (!i) return;
  Work work(this);  // outside any call: this is the unit of work that commits it
  leases_.RecordWorkload(*i, s, now_, pending_);
}

json ControlPlane::WorkloadJson(const store::LeaseRecord& r) const {
  const json stored = control::StoredWorkload(r);
  if (stored.is_null()) return nullptr;
  json out = stored.value("status", json::object());
  if (!out.contains("state")) out = workload::WorkloadStatus{}.ToJson();
  const json spec = stored.value("spec", json::object());
  out["command"] = spec.value("command", json::array());
  json names = json::array();  // the values may be secrets: only the names are shown
  const json env = spec.value("env", json::object());  // named: items() of a temporary dangles
  for (const auto& [k, v] : env.items()) names.push_back(k);
  out["env"] = std::move(names);
  if (spec.contains("image")) out["image"] = spec["image"];
  out["ssh_public_keys"] = spec.value("ssh_public_keys", json::array()).size();
  if (leases_.workloads() != nullptr) {
    if (workload::Runner* sb = leases_.workloads()->Find(r.id); sb != nullptr && sb->ssh()) {
      const workload::SshAccess& a = *sb->ssh();
      std::string line;
      for (const auto& arg : a.command) line += (line.empty() ? "" : " ") + arg;
      out["ssh"] = {{"command", line},
                    {"argv", a.command},
                    {"host_public_key", a.host_public_key},
                    {"known_hosts", fmt::format("[127.0.0.1]:{} {}", a.port, a.host_public_key)}};
    }
  }
  return out;
}

Result<const store::LeaseRecord*> ControlPlane::LeaseOfToken(std::string_view token) {
  Advance();
  const std::string id = leases_.workloads() != nullptr ? leases_.workloads()->LeaseOfToken(token) : "";
  const auto i = id.empty() ? std::nullopt : book().IndexOf(id);
  if (!i) return Status(StatusCode::kNotFound, "not_found", "unknown metadata token");
  return &book()[*i].rec;
}

Result<workload::LogRing*> ControlPlane::WorkloadLogs(const Principal& who, const std::string& id) {
  LL_ASSIGN_OR_RETURN(size_t i, book().Find(who, id));
  if (book()[i].rec.workload.empty()) {
    return Status(StatusCode::kNotFound, "workload_not_found", fmt::format("lease `{}` has no workload", id), "id");
  }
  workload::Runner* sb = leases_.workloads() != nullptr ? leases_.workloads()->Find(id) : nullptr;
  if (sb == nullptr) {
    return Status(StatusCode::kNotFound, "logs_not_found",
                  fmt::format("no logs of lease `{}`: they are kept in memory from the workload's start, while "
                              "the server runs, for the newest ended workloads",
                              id),
                  "id");
  }
  return &sb->logs();
}

}  // namespace ll::control
