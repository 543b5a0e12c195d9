// The lease events' watchers (SSE streams, the dashboard): a component of the control plane.
// Events are queued with the batch that makes them (store::Batch::events) and published here
// only after that batch is committed, with the sequence numbers the store gave them, so a
// watcher never sees what a crash could take back.
//
// Thread-safety: none; the control plane's thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace ll::control {

// A lease event as delivered to watchers (SSE).
struct LeaseEvent {
  int64_t seq = 0;
  std::string type;
  std::string data;  // JSON text
  bool final = false;  // the lease reached a final state
};

// A final state, or the event that reports reaching it (they share names).
bool FinalState(const std::string& s);

class EventLog {
 public:
  // Live events of the lease (`*`: of every lease); `fn` returns false to unsubscribe.
  uint64_t Subscribe(const std::string& lease_id, std::function<bool(const LeaseEvent&)> fn);
  void Unsubscribe(uint64_t token);
  // Delivers committed events, in order, to the watchers of their lease and of `*`.
  void Publish(std::vector<store::LeaseEventRecord> committed);

 private:
  std::multimap<std::string, std::pair<uint64_t, std::function<bool(const LeaseEvent&)>>> watchers_;
  uint64_t next_token_ = 1;
};

}  // namespace ll::control
