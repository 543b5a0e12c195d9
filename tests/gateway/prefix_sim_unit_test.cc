// Prefix affinity against plain least-loaded routing on the shipped Mooncake trace (its
// `hash_ids`): affinity must reuse far more of the replicas' prefix caches at a bounded cost in
// load balance.
#include <gtest/gtest.h>

#include "gateway/prefix_sim.h"
#include "sim/trace.h"

namespace ll::gateway {
namespace {

std::vector<BlockRequest> Mooncake() {
  auto t = sim::ReadLlmTrace(std::string("mooncake:") + LL_SOURCE_DIR + "/data/mooncake_fast25/conversation_trace.jsonl");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  std::vector<BlockRequest> out;
  if (!t.ok()) return out;
  for (const auto& r : t->requests) out.push_back({r.offset, r.input_tokens, r.output_tokens, r.blocks});
  return out;
}

TEST(PrefixSim, AffinityReusesMoreCacheThanLeastLoadedOnMooncake) {
  const std::vector<BlockRequest> trace = Mooncake();
  ASSERT_GT(trace.size(), 10'000u);
  ASSERT_FALSE(trace[0].blocks.empty());
  PrefixSimOptions o;
  PrefixSimResult affinity = SimulatePrefixRouting(trace, o);
  o.router.affinity = false;
  PrefixSimResult least = SimulatePrefixRouting(trace, o);
  EXPECT_EQ(affinity.requests, least.requests);
  EXPECT_EQ(affinity.prompt_tokens, least.prompt_tokens);
  EXPECT_GT(affinity.hit_rate, least.hit_rate + 0.10) << affinity.hit_rate << " vs " << least.hit_rate;
  EXPECT_LT(affinity.max_load_share, 2.0 / o.replicas) << "bounded load: no replica takes twice its share";
  // Deterministic: the same trace, the same answer.
  o.router.affinity = true;
  EXPECT_EQ(SimulatePrefixRouting(trace, o).hit_tokens, affinity.hit_tokens);
}

TEST(PrefixSim, OnlyALeadingRunOfBlocksHits) {
  PrefixSimOptions o;
  o.replicas = 1;
  o.block_tokens = 10;
  std::vector<BlockRequest> t = {{Duration::Millis(0), 30, 1, {1, 2, 3}},
                                 {Duration::Millis(1000), 30, 1, {1, 2, 4}},   // 2 blocks hit
                                 {Duration::Millis(2000), 25, 1, {9, 2, 3}}};  // none: the first differs
  PrefixSimResult r = SimulatePrefixRouting(t, o);
  EXPECT_EQ(r.prompt_tokens, 85);
  EXPECT_EQ(r.hit_tokens, 20);
}

}  // namespace
}  // namespace ll::gateway
