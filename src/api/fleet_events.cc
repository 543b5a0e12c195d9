// What Slurm's holder jobs post (fleet/backend.h): a preemption notice and a replica's
// registration, decoded; the control plane takes them (control/fleet_events.cc).
#include <fmt/format.h>

#include <algorithm>

#include "api/control_plane.h"
#include "api/fields.h"

namespace ll::api {

using nlohmann::json;

Reply ControlPlane::SlurmNotice(const json& body) {
  if (Status st = TakesNotices(); !st.ok()) return ErrorReply(st);
  Fields f(body);
  f.Only({"lease", "token", "node"});
  auto lease = f.Str("lease", true);
  auto token = f.Str("token", true);
  auto node = f.Str("node", false);
  if (!f.ok()) return f.error();
  auto taken = control::ControlPlane::SlurmNotice(*lease, *token, node.value_or("?"));
  if (!taken.ok()) return ErrorReply(taken.status());
  Reply r;
  if (taken->lease == nullptr) {
    r.body = {{"object", "notice"}, {"replica", *lease}, {"state", "draining"}};
    return r;
  }
  const store::LeaseRecord& l = *taken->lease;
  r.body = {{"object", "notice"},
            {"lease", l.id},
            {"state", Name(l.state)},
            {"reclaim_at", l.reclaim_at == kTimeMax ? json(nullptr) : json(FormatUtc(l.reclaim_at))}};
  return r;
}

Reply ControlPlane::SlurmReplicaUp(const json& body) {
  if (Status st = TakesReplicas(); !st.ok()) return ErrorReply(st);
  Fields f(body);
  f.Only({"replica", "token", "url"});
  auto id = f.Str("replica", true);
  auto token = f.Str("token", true);
  auto url = f.Str("url", true);
  if (!f.ok()) return f.error();
  auto slot = control::ControlPlane::SlurmReplicaUp(*id, *token, *url);
  if (!slot.ok()) return ErrorReply(slot.status());
  Reply r;
  r.body = {{"object", "replica"}, {"id", slot->id}, {"model", slot->model}, {"url", *url}, {"state", "serving"}};
  return r;
}

}  // namespace ll::api
