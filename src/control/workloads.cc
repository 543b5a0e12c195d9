#include "control/workloads.h"

#include <signal.h>
#include <sodium.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <fmt/format.h>

namespace ll::control {
namespace {

std::string RandomToken() {
  unsigned char bytes[32];
  randombytes_buf(bytes, sizeof bytes);
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

bool Ended(workload::State s) {
  return s == workload::State::kExited || s == workload::State::kKilled || s == workload::State::kFailed;
}

}  // namespace

Workloads::Workloads(boost::asio::io_context& io, const Clock& clock, WorkloadsOptions options)
    : io_(io), clock_(clock), options_(std::move(options)) {}

Workloads::~Workloads() {
  alive_.reset();
  by_lease_.clear();  // each runner kills (a sandbox also wipes) what is left
  // The server's own cgroup parents, now empty (best effort: none may exist).
  if (options_.sandbox.cgroup_v1_root.empty()) return;
  for (const char* controller : {"pids", "memory"}) {
    rmdir(fmt::format("{}/{}/{}", options_.sandbox.cgroup_v1_root, controller, options_.sandbox.cgroup_parent).c_str());
  }
}

workload::WorkloadStatus Workloads::Start(const std::string& lease_id, std::vector<std::string> nodes,
                                          std::string cuda_visible_devices, const workload::Spec& spec) {
  if (auto it = by_lease_.find(lease_id); it != by_lease_.end()) return it->second.runner->status();
  Entry e;
  e.token = RandomToken();
  workload::LeaseContext ctx{lease_id, lease_id, std::move(nodes), std::move(cuda_visible_devices),
                             options_.metadata_base + e.token + "/"};
  std::weak_ptr<int> alive = alive_;
  workload::Runner::Listener listener = [this, alive, lease_id](const workload::WorkloadStatus& s) {
    boost::asio::post(io_, [this, alive, lease_id, s] {
      if (!alive.expired()) Changed(lease_id, s);
    });
  };
  if (options_.runner) {
    e.runner = options_.runner(ctx, spec, std::move(listener));
  } else {
    workload::SandboxOptions o = options_.sandbox;
    if (options_.uid_base) {
      o.host_uid = *options_.uid_base + started_ % 60'000;
      o.host_gid = *o.host_uid;
    }
    e.runner = std::make_unique<workload::Sandbox>(io_, clock_, std::move(o), std::move(ctx), spec,
                                                   std::move(listener));
  }
  ++started_;
  workload::Runner* sb = e.runner.get();
  by_token_[e.token] = lease_id;
  by_lease_.emplace(lease_id, std::move(e));
  sb->Start();
  return sb->status();
}

void Workloads::Changed(const std::string& lease_id, const workload::WorkloadStatus& status) {
  if (listener_) listener_(lease_id, status);
  if (!Ended(status.state)) return;
  ended_.push_back(lease_id);
  // Here, from a posted handler, no sandbox's own call is on the stack: dropping one is safe.
  while (ended_.size() > options_.keep_ended) {
    auto it = by_lease_.find(ended_.front());
    if (it != by_lease_.end()) {
      by_token_.erase(it->second.token);
      by_lease_.erase(it);
    }
    ended_.pop_front();
  }
}

void Workloads::Notice(const std::string& lease_id, Time reclaim_at) {
  if (workload::Runner* r = Find(lease_id)) r->Notice(reclaim_at, reclaim_at);
}

void Workloads::Stop(const std::string& lease_id, Duration grace) {
  if (workload::Runner* r = Find(lease_id)) r->Stop(grace);
}

std::optional<workload::WorkloadStatus> Workloads::StopNow(const std::string& lease_id, Time now) {
  workload::Runner* r = Find(lease_id);
  if (r == nullptr) return std::nullopt;
  r->Stop(Duration{});
  workload::WorkloadStatus s = r->status();
  if (!Ended(s.state)) {
    s.state = workload::State::kKilled;
    s.exit_code = 128 + SIGKILL;
    s.ended_at = now;
  }
  return s;
}

workload::Runner* Workloads::Find(const std::string& lease_id) {
  auto it = by_lease_.find(lease_id);
  return it == by_lease_.end() ? nullptr : it->second.runner.get();
}

Status Workloads::Accepts(const workload::Spec& spec, workload::SpecError* why) const {
  return options_.accepts ? options_.accepts(spec, why) : Status::Ok();
}

std::string Workloads::LeaseOfToken(std::string_view token) const {
  auto it = by_token_.find(token);
  return it == by_token_.end() ? std::string() : it->second;
}

}  // namespace ll::control
