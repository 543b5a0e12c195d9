// A lease's workload on the sim fleet, as the API shows it: its status on the lease, its logs,
// the metadata service its token opens. Starting, noticing and stopping it with its lease, and
// its events (`workload_started`, `workload_exited`), are control::Leases' (lease_records.cc).
#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/control_plane_internal.h"

namespace ll::api {

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

Reply ControlPlane::MetadataInstanceAction(std::string_view token, std::string* lease_id) {
  Advance();
  const std::string id = leases_.workloads() != nullptr ? leases_.workloads()->LeaseOfToken(token) : "";
  const auto i = id.empty() ? std::nullopt : book().IndexOf(id);
  if (!i) return ErrorReply(StatusCode::kNotFound, "not_found", "unknown metadata token");
  if (lease_id != nullptr) *lease_id = id;
  const store::LeaseRecord& r = book()[*i].rec;
  if (r.reclaim_at == kTimeMax) {
    return ErrorReply(StatusCode::kNotFound, "not_found", "no instance action: the lease has no reclaim notice");
  }
  Reply rep;
  rep.body = {{"action", "terminate"}, {"time", FormatUtc(r.reclaim_at)}};
  return rep;
}

Reply ControlPlane::MetadataLease(std::string_view token) {
  Advance();
  const std::string id = leases_.workloads() != nullptr ? leases_.workloads()->LeaseOfToken(token) : "";
  const auto i = id.empty() ? std::nullopt : book().IndexOf(id);
  if (!i) return ErrorReply(StatusCode::kNotFound, "not_found", "unknown metadata token");
  Reply rep;
  rep.body = LeaseJson(book()[*i].rec);
  return rep;
}

workload::LogRing* ControlPlane::WorkloadLogs(const Principal& who, const std::string& id, Reply* error) {
  auto i = book().Find(who, id);
  if (!i.ok()) {
    *error = ErrorReply(i.status());
    return nullptr;
  }
  if (book()[*i].rec.workload.empty()) {
    *error = ErrorReply(StatusCode::kNotFound, "workload_not_found", fmt::format("lease `{}` has no workload", id), "id");
    return nullptr;
  }
  workload::Runner* sb = leases_.workloads() != nullptr ? leases_.workloads()->Find(id) : nullptr;
  if (sb == nullptr) {
    *error = ErrorReply(StatusCode::kNotFound, "logs_not_found",
                        fmt::format("no logs of lease `{}`: they are kept in memory from the workload's start, while "
                                    "the server runs, for the newest ended workloads",
                                    id),
                        "id");
    return nullptr;
  }
  return &sb->logs();
}

Reply ControlPlane::LeaseLogs(const Principal& who, const std::string& id) {
  Reply r;
  workload::LogRing* ring = WorkloadLogs(who, id, &r);
  if (ring == nullptr) return r;
  r.body = ring->Read(ring->begin_offset()).data;
  r.content_type = "text/plain; charset=utf-8";
  return r;
}

}  // namespace ll::api
