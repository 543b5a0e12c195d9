// A lease's workload on the sim fleet: started when the lease becomes active, noticed with it,
// stopped at its end (control::Workloads runs it); its status on the lease and its events
// (`workload_started`, `workload_exited`); its logs; the metadata service its token opens.
#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/control_plane_internal.h"

namespace ll::api {

using nlohmann::json;

namespace {

// What the store keeps of a lease's workload: {"spec", "status"} (null: none).
json Stored(const store::LeaseRecord& r) {
  if (r.workload.empty()) return nullptr;
  json j = json::parse(r.workload, nullptr, false);
  return j.is_object() ? j : json(nullptr);
}

bool EndedState(const std::string& s) { return s == "exited" || s == "killed" || s == "failed"; }

}  // namespace

void ControlPlane::UseWorkloads(control::Workloads* w) {
  workloads_ = w;
  if (w != nullptr) w->SetListener([this](const std::string& id, const workload::WorkloadStatus& s) { OnWorkload(id, s); });
}

void ControlPlane::StartWorkload(Lease& l, const alloc::Holder& h) {
  const json stored = Stored(l.rec);
  if (stored.is_null()) return;
  auto spec = workload::ParseSpec(stored.value("spec", json::object()));
  workload::WorkloadStatus s;
  if (workloads_ == nullptr || !spec.ok()) {
    s.state = workload::State::kFailed;
    s.ended_at = now_;
    s.error = spec.ok() ? "this server runs no workloads" : std::string(spec.status().message());
  } else {
    std::vector<std::string> nodes;
    for (const auto& sh : h.shares) nodes.push_back(topology().nodes[sh.node.v].name);
    // The sim fleet's GPUs have no device files: the lease's count on its first node, from 0.
    std::string cuda;
    for (Gpus g = 0; !h.shares.empty() && g < h.shares[0].gpus; ++g) cuda += fmt::format("{}{}", g == 0 ? "" : ",", g);
    s = workloads_->Start(l.rec.id, std::move(nodes), std::move(cuda), *spec);
  }
  RecordWorkload(l, s);
}

// Each transition once (the sandbox's own report of a start recorded here already is ignored),
// and never back from an end.
void ControlPlane::RecordWorkload(Lease& l, const workload::WorkloadStatus& s) {
  json stored = Stored(l.rec);
  if (stored.is_null()) return;
  const json status = s.ToJson();
  const std::string before = stored.value("status", json::object()).value("state", "pending");
  if (before == status["state"] || EndedState(before) || s.state == workload::State::kPending) return;
  stored["status"] = status;
  l.rec.workload = stored.dump();
  const bool started = s.state == workload::State::kRunning;
  const Time at = started ? s.started_at.value_or(now_) : s.ended_at.value_or(now_);
  Emit(l, started ? "workload_started" : "workload_exited", at, status);
}

void ControlPlane::OnWorkload(const std::string& lease_id, const workload::WorkloadStatus& s) {
  auto i = leases_.IndexOf(lease_id);
  if (!i) return;
  Work work(this);  // outside any call: this is the unit of work that commits it
  RecordWorkload(leases_[*i], s);
}

// A workload that was running (or about to) when the server stopped died with it.
void ControlPlane::EndWorkloadAtLoad(Lease& l, Time now) {
  json stored = Stored(l.rec);
  if (stored.is_null()) return;
  json status = stored.value("status", json::object());
  const std::string state = status.value("state", "pending");
  if (EndedState(state) || (state == "pending" && l.rec.state == LeaseState::kScheduled)) return;
  status["state"] = "killed";
  status["ended_at"] = FormatUtc(now);
  status["error"] = "server restarted";
  if (!status.contains("exit_code")) status["exit_code"] = nullptr;
  stored["status"] = status;
  l.rec.workload = stored.dump();
  Emit(l, "workload_exited", now, status);
}

json ControlPlane::WorkloadJson(const store::LeaseRecord& r) const {
  const json stored = Stored(r);
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
  if (workloads_ != nullptr) {
    if (workload::Runner* sb = workloads_->Find(r.id); sb != nullptr && sb->ssh()) {
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
  const std::string id = workloads_ != nullptr ? workloads_->LeaseOfToken(token) : "";
  const auto i = id.empty() ? std::nullopt : leases_.IndexOf(id);
  if (!i) return ErrorReply(StatusCode::kNotFound, "not_found", "unknown metadata token");
  if (lease_id != nullptr) *lease_id = id;
  const store::LeaseRecord& r = leases_[*i].rec;
  if (r.reclaim_at == kTimeMax) {
    return ErrorReply(StatusCode::kNotFound, "not_found", "no instance action: the lease has no reclaim notice");
  }
  Reply rep;
  rep.body = {{"action", "terminate"}, {"time", FormatUtc(r.reclaim_at)}};
  return rep;
}

Reply ControlPlane::MetadataLease(std::string_view token) {
  Advance();
  const std::string id = workloads_ != nullptr ? workloads_->LeaseOfToken(token) : "";
  const auto i = id.empty() ? std::nullopt : leases_.IndexOf(id);
  if (!i) return ErrorReply(StatusCode::kNotFound, "not_found", "unknown metadata token");
  Reply rep;
  rep.body = LeaseJson(leases_[*i].rec);
  return rep;
}

workload::LogRing* ControlPlane::WorkloadLogs(const Principal& who, const std::string& id, Reply* error) {
  auto i = leases_.Find(who, id);
  if (!i.ok()) {
    *error = ErrorReply(i.status());
    return nullptr;
  }
  if (leases_[*i].rec.workload.empty()) {
    *error = ErrorReply(StatusCode::kNotFound, "workload_not_found", fmt::format("lease `{}` has no workload", id), "id");
    return nullptr;
  }
  workload::Runner* sb = workloads_ != nullptr ? workloads_->Find(id) : nullptr;
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
