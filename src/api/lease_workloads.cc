// A lease's workload on the sim fleet, as the API shows it: its logs and the metadata service
// its token opens. Its status on the lease and the lookups are control::ControlPlane's
// (control/lease_workloads.cc).
#include <fmt/format.h>

#include "api/control_plane.h"

namespace ll::api {

using nlohmann::json;

Reply ControlPlane::MetadataInstanceAction(std::string_view token, std::string* lease_id) {
  auto lease = LeaseOfToken(token);
  if (!lease.ok()) return ErrorReply(lease.status());
  const store::LeaseRecord& r = **lease;
  if (lease_id != nullptr) *lease_id = r.id;
  if (r.reclaim_at == kTimeMax) {
    return ErrorReply(StatusCode::kNotFound, "not_found", "no instance action: the lease has no reclaim notice");
  }
  Reply rep;
  rep.body = {{"action", "terminate"}, {"time", FormatUtc(r.reclaim_at)}};
  return rep;
}

Reply ControlPlane::MetadataLease(std::string_view token) {
  auto lease = LeaseOfToken(token);
  if (!lease.ok()) return ErrorReply(lease.status());
  Reply rep;
  rep.body = LeaseJson(**lease);
  return rep;
}

workload::LogRing* ControlPlane::WorkloadLogs(const Principal& who, const std::string& id, Reply* error) {
  auto ring = control::ControlPlane::WorkloadLogs(who, id);
  if (ring.ok()) return *ring;
  *error = ErrorReply(ring.status());
  return nullptr;
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
