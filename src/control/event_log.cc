#include "control/event_log.h"

namespace ll::control {

bool FinalState(const std::string& s) { return s == "released" || s == "reclaimed" || s == "ended"; }

uint64_t EventLog::Subscribe(const std::string& lease_id, std::function<bool(const LeaseEvent&)> fn) {
  uint64_t token = next_token_++;
  watchers_.emplace(lease_id, std::make_pair(token, std::move(fn)));
  return token;
}

void EventLog::Unsubscribe(uint64_t token) {
  std::erase_if(watchers_, [&](const auto& w) { return w.second.first == token; });
}

void EventLog::Publish(std::vector<store::LeaseEventRecord> committed) {
  for (auto& e : committed) {
    LeaseEvent ev;
    ev.seq = e.seq;
    ev.type = e.type;
    ev.data = std::move(e.data);
    ev.final = FinalState(e.type);
    for (const std::string& key : {e.lease_id, std::string("*")}) {
      auto [b, en] = watchers_.equal_range(key);
      for (auto w = b; w != en;) {
        if (!w->second.second(ev)) {
          w = watchers_.erase(w);
        } else {
          ++w;
        }
      }
    }
  }
}

}  // namespace ll::control
