#include "gateway/prefix_sim.h"

#include <algorithm>
#include <list>
#include <queue>
#include <string>
#include <unordered_map>

namespace ll::gateway {
namespace {

// An LRU set of block ids.
class LruBlocks {
 public:
  explicit LruBlocks(int64_t capacity) : capacity_(capacity) {}
  bool Contains(uint64_t id) const { return index_.contains(id); }
  void Touch(uint64_t id) {
    if (auto it = index_.find(id); it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    order_.push_front(id);
    index_[id] = order_.begin();
    if (static_cast<int64_t>(order_.size()) > capacity_) {
      index_.erase(order_.back());
      order_.pop_back();
    }
  }

 private:
  int64_t capacity_;
  std::list<uint64_t> order_;
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> index_;
};

uint64_t AffinityHash(const std::vector<uint64_t>& blocks, int n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < n && i < static_cast<int>(blocks.size()); ++i) {
    h ^= blocks[i] + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return h;
}

}  // namespace

PrefixSimResult SimulatePrefixRouting(const std::vector<BlockRequest>& trace, const PrefixSimOptions& o) {
  Router router(o.router);
  std::vector<LruBlocks> caches;
  std::vector<int64_t> served(o.replicas, 0);
  for (int i = 0; i < o.replicas; ++i) {
    Replica r;
    r.id = "rep_" + std::to_string(i);
    r.model = "m";
    router.Add(r);
    caches.emplace_back(o.cache_blocks);
  }
  // Finishing requests: (time, sequence, replica, tokens), earliest first.
  struct Done {
    int64_t at_us, seq;
    int replica;
    int64_t tokens;
    bool operator>(const Done& d) const { return at_us != d.at_us ? at_us > d.at_us : seq > d.seq; }
  };
  std::priority_queue<Done, std::vector<Done>, std::greater<>> running;
  PrefixSimResult res;
  int64_t seq = 0;
  for (const BlockRequest& q : trace) {
    const int64_t now_us = q.offset.ms * 1000;
    while (!running.empty() && running.top().at_us <= now_us) {
      router.End("rep_" + std::to_string(running.top().replica), running.top().tokens);
      running.pop();
    }
    Replica* r = router.Pick("m", AffinityHash(q.blocks, o.affinity_blocks), {}, Time{q.offset.ms});
    const int idx = std::stoi(r->id.substr(4));
    LruBlocks& cache = caches[idx];
    int64_t hit_blocks = 0;
    while (hit_blocks < static_cast<int64_t>(q.blocks.size()) && cache.Contains(q.blocks[hit_blocks])) ++hit_blocks;
    for (uint64_t b : q.blocks) cache.Touch(b);
    const int64_t hit = std::min(q.input_tokens, hit_blocks * o.block_tokens);
    const int64_t tokens = q.input_tokens + q.output_tokens;
    router.Begin(r, tokens);
    ++served[idx];
    const double seconds = static_cast<double>(q.input_tokens - hit) / o.prefill_tokens_per_s +
                           static_cast<double>(q.output_tokens) / o.decode_tokens_per_s;
    running.push({now_us + static_cast<int64_t>(seconds * 1e6), seq++, idx, tokens});
    ++res.requests;
    res.prompt_tokens += q.input_tokens;
    res.hit_tokens += hit;
  }
  res.hit_rate = res.prompt_tokens > 0 ? static_cast<double>(res.hit_tokens) / static_cast<double>(res.prompt_tokens) : 0;
  res.max_load_share = res.requests > 0 ? static_cast<double>(*std::max_element(served.begin(), served.end())) /
                                              static_cast<double>(res.requests)
                                        : 0;
  res.affinity_hits = router.affinity_hits();
  return res;
}

}  // namespace ll::gateway
