#include "gateway/router.h"

#include <algorithm>
#include <set>

namespace ll::gateway {

uint64_t HashId(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t RendezvousWeight(uint64_t prefix_hash, uint64_t replica_hash) {
  // SplitMix64's finaliser over the combination: well spread for any pair.
  uint64_t z = prefix_hash ^ (replica_hash * 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void Router::Add(Replica r) {
  if (Replica* old = Find(r.id)) {
    r.outstanding_tokens = old->outstanding_tokens;
    r.in_flight = old->in_flight;
    *old = std::move(r);
    return;
  }
  replicas_.push_back(std::move(r));
}

void Router::Remove(const std::string& id) {
  std::erase_if(replicas_, [&](const Replica& r) { return r.id == id; });
}

bool Router::Drain(const std::string& id) {
  Replica* r = Find(id);
  if (r == nullptr) return false;
  r->draining = true;
  return true;
}

bool Router::SetDown(const std::string& id) {
  Replica* r = Find(id);
  if (r == nullptr) return false;
  r->down = true;
  return true;
}

bool Router::SetUp(const std::string& id, const std::string& host, const std::string& port) {
  Replica* r = Find(id);
  if (r == nullptr) return false;
  r->down = false;
  r->host = host;
  r->port = port;
  return true;
}

Replica* Router::Find(const std::string& id) {
  for (Replica& r : replicas_) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

bool Router::Serves(const std::string& model) const {
  return std::any_of(replicas_.begin(), replicas_.end(), [&](const Replica& r) { return r.model == model; });
}

std::vector<std::string> Router::Models() const {
  std::set<std::string> s;
  for (const Replica& r : replicas_) s.insert(r.model);
  return {s.begin(), s.end()};
}

Replica* Router::Pick(const std::string& model, uint64_t prefix_hash, const std::vector<std::string>& exclude,
                      Time now) {
  Replica* least = nullptr;
  Replica* preferred = nullptr;
  uint64_t best_weight = 0;
  for (Replica& r : replicas_) {
    if (r.model != model || r.draining || r.down || now < r.failed_until) continue;
    if (std::find(exclude.begin(), exclude.end(), r.id) != exclude.end()) continue;
    // Ties on load go to the earlier replica: deterministic.
    if (least == nullptr || r.outstanding_tokens < least->outstanding_tokens) least = &r;
    const uint64_t w = RendezvousWeight(prefix_hash, HashId(r.id));
    if (preferred == nullptr || w > best_weight) {
      preferred = &r;
      best_weight = w;
    }
  }
  if (least == nullptr || !options_.affinity) return least;
  const int64_t bound =
      least->outstanding_tokens + options_.slack_tokens + least->outstanding_tokens * options_.slack_permille / 1000;
  if (preferred->outstanding_tokens <= bound) {
    ++affinity_hits_;
    return preferred;
  }
  return least;
}

void Router::Begin(Replica* r, int64_t tokens) {
  r->outstanding_tokens += tokens;
  ++r->in_flight;
  ++r->requests;
}

void Router::End(const std::string& id, int64_t tokens) {
  if (Replica* r = Find(id)) {
    r->outstanding_tokens -= tokens;
    --r->in_flight;
  }
}

void Router::Failed(const std::string& id, Time now) {
  if (Replica* r = Find(id)) {
    ++r->failures;
    r->failed_until = now + options_.eject_for;
  }
}

}  // namespace ll::gateway
