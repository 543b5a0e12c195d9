// What prefix affinity buys: a replay of an LLM request trace whose prompts are given as KV
// blocks (Mooncake's `hash_ids`, 512 tokens each) against N replicas, each with an LRU prefix
// cache, routed by the gateway's own Router. A request's cache hit is the run of its leading
// blocks already in the chosen replica's cache (vLLM / SGLang prefix caching reuse only a
// prefix). Load is the Router's outstanding tokens; a request holds its tokens until it
// finishes, after its uncached prompt tokens at `prefill_tokens_per_s` and its output at
// `decode_tokens_per_s`. Pure and deterministic.
#pragma once

#include <cstdint>
#include <vector>

#include "core/time.h"
#include "gateway/router.h"

namespace ll::gateway {

struct BlockRequest {
  Duration offset;
  int64_t input_tokens = 0, output_tokens = 0;
  std::vector<uint64_t> blocks;
};

struct PrefixSimOptions {
  int replicas = 8;
  int64_t cache_blocks = 4096;  // per replica: 2 M tokens of KV at 512 tokens a block
  int64_t block_tokens = 512;
  int affinity_blocks = 2;       // leading blocks hashed for affinity (the gateway hashes bytes)
  double prefill_tokens_per_s = 20'000;
  double decode_tokens_per_s = 2'000;  // a replica's aggregate decode speed
  RouterOptions router;
};

struct PrefixSimResult {
  int64_t requests = 0;
  int64_t prompt_tokens = 0, hit_tokens = 0;  // hit: served from a replica's prefix cache
  double hit_rate = 0;                         // hit_tokens / prompt_tokens
  double max_load_share = 0;  // the busiest replica's share of all requests
  int64_t affinity_hits = 0;  // requests sent to their preferred replica
};

PrefixSimResult SimulatePrefixRouting(const std::vector<BlockRequest>& trace, const PrefixSimOptions& options);

}  // namespace ll::gateway
