// Picks the replica for a request: least outstanding tokens, with prefix affinity.
//
// Algorithm: each request carries a hash of its prompt's first bytes (ApiCall::prefix_hash).
// Rendezvous hashing (highest hash of (prefix, replica)) names the request's preferred replica
// among the model's usable ones, so requests that share a prefix (a system prompt, the earlier
// turns of a conversation) land where that prefix's KV cache already is, and only 1/N of the
// prefixes move when a replica comes or goes. Affinity is bounded by load: the preferred
// replica is taken only while its outstanding tokens are within `slack_tokens` plus
// `slack_ratio` of the least-loaded replica's; otherwise the least-loaded one is. A replica is
// usable unless it drains (reclaimed: no new requests, in-flight ones finish) or failed
// recently (ejected for `eject_for`, then tried again).
//
// Pure and deterministic: no I/O, time passed in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/time.h"

namespace ll::gateway {

struct RouterOptions {
  bool affinity = true;          // false: plain least outstanding tokens
  int64_t slack_tokens = 32768;  // how far past the least-loaded replica affinity may go ...
  int64_t slack_permille = 250;  // ... plus this share of the least-loaded one's tokens
  Duration eject_for = Duration::Seconds(5);
};

struct Replica {
  std::string id;     // "rep_…"
  std::string model;  // the model it serves
  std::string host, port;
  bool draining = false;
  bool down = false;  // its server is restarting (engine_replicas.h)
  Time failed_until;  // ejected until then
  int64_t outstanding_tokens = 0;
  int64_t in_flight = 0;
  // Counters.
  int64_t requests = 0, failures = 0;
};

class Router {
 public:
  explicit Router(RouterOptions options = {}) : options_(options) {}

  // Adds a replica (an id already there is replaced, keeping its load).
  void Add(Replica r);
  void Remove(const std::string& id);
  // No new requests; returns false for an unknown id.
  bool Drain(const std::string& id);
  // Down (no requests) until back up at host:port; returns false for an unknown id. Draining
  // and load are kept.
  bool SetDown(const std::string& id);
  bool SetUp(const std::string& id, const std::string& host, const std::string& port);

  // The replica for a request for `model` with `prefix_hash`, skipping `exclude` (replicas
  // this request already failed on); nullptr if none is usable.
  Replica* Pick(const std::string& model, uint64_t prefix_hash, const std::vector<std::string>& exclude, Time now);
  // Whether any replica serves `model` (draining or not).
  bool Serves(const std::string& model) const;
  std::vector<std::string> Models() const;

  // Load accounting around a request.
  void Begin(Replica* r, int64_t tokens);
  void End(const std::string& id, int64_t tokens);
  void Failed(const std::string& id, Time now);

  Replica* Find(const std::string& id);
  const std::vector<Replica>& replicas() const { return replicas_; }
  const RouterOptions& options() const { return options_; }
  int64_t affinity_hits() const { return affinity_hits_; }

 private:
  RouterOptions options_;
  std::vector<Replica> replicas_;
  int64_t affinity_hits_ = 0;  // requests sent to their preferred replica
};

// The rendezvous weight of (prefix, replica): 64-bit mix of both hashes.
uint64_t RendezvousWeight(uint64_t prefix_hash, uint64_t replica_hash);
uint64_t HashId(const std::string& s);

}  // namespace ll::gateway
