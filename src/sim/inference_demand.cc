#include "sim/inference_demand.h"

#include <algorithm>
#include <cmath>

#include "sim/engine.h"
#include "sim/trace.h"

namespace ll::sim {

using alloc::HolderClass;
using alloc::HolderState;

Status InferenceDemand::Load(const InferenceOptions& options) {
  if (options.spec.empty()) return Status::Ok();
  auto llm = ReadLlmTrace(options.spec);
  if (!llm.ok()) return Status::Invalid("--inference: " + llm.status().message());
  // Per-minute token rates, replayed in a loop over the simulated period.
  int64_t minutes = std::max<int64_t>(1, llm->span.ms / 60'000 + 1);
  in_tps_.assign(minutes, 0);
  out_tps_.assign(minutes, 0);
  for (const LlmRequest& r : llm->requests) {
    in_tps_[r.offset.ms / 60'000] += r.input_tokens * options.rate_scale / 60.0;
    out_tps_[r.offset.ms / 60'000] += r.output_tokens * options.rate_scale / 60.0;
  }
  tokens_per_s_per_gpu_ = options.tokens_per_s_per_gpu;
  enabled_ = true;
  return Status::Ok();
}

void InferenceDemand::Size(alloc::Allocator& alloc, Time now, Duration since, const market::PriceBook& prices,
                           Money floor, Money spot, bool baseline) {
  size_t m = Minute(since);
  Gpus need = static_cast<Gpus>(std::ceil(out_tps_[m] / static_cast<double>(tokens_per_s_per_gpu_)));
  double in_per_out = out_tps_[m] > 0 ? in_tps_[m] / out_tps_[m] : 0;
  double per_gpu_h = static_cast<double>(tokens_per_s_per_gpu_) * 3600 *
                     (prices.output_per_mtok.micros + in_per_out * prices.input_per_mtok.micros) / 1e6;
  Money earn = Money::Micros(std::max<int64_t>(floor.micros, static_cast<int64_t>(per_gpu_h)));
  std::erase_if(replicas_, [&](HolderId id) { return alloc.holder(id).state == HolderState::kEnded; });
  Gpus have = 0;
  for (HolderId id : replicas_) have += alloc.holder(id).state == HolderState::kActive ? 1 : 0;
  if (baseline) return;
  while (have > need + need / 10 + 1 && !replicas_.empty()) {  // scale down with slack
    HolderId id = replicas_.back();
    replicas_.pop_back();
    if (alloc.holder(id).state == HolderState::kActive) --have;
    alloc.Release(id, now);
  }
  for (int p = 0; p < alloc.pool_count() && have < need; ++p) {
    PoolId pool{static_cast<uint32_t>(p)};
    while (have < need && alloc.Sellable(pool, now) > 0) {
      auto id = alloc.PlaceOutside(HolderClass::kInference, pool, 1, earn, earn, 0, now);
      if (!id.ok()) break;
      replicas_.push_back(*id);
      ++have;
    }
  }
  if (have < need && earn > spot) {
    // Make room: spot leases in the pool with the most spot get a notice.
    auto pool = [](int p) { return PoolId{static_cast<uint32_t>(p)}; };
    int best = -1;
    for (int p = 0; p < alloc.pool_count(); ++p) {
      if (best < 0 || alloc.pool(pool(p)).spot > alloc.pool(pool(best)).spot) best = p;
    }
    Gpus noticed = 0;
    for (int p = 0; p < alloc.pool_count(); ++p) noticed += alloc.pool(pool(p)).noticed;
    if (best >= 0 && noticed < need - have) alloc.NoticeCheapestSpot(pool(best), need - have - noticed, now);
  }
}

void InferenceDemand::Serve(const alloc::Allocator& alloc, Duration since, int64_t ms) {
  size_t m = Minute(since);
  double cap = static_cast<double>(alloc.TotalInference()) * tokens_per_s_per_gpu_;
  double out = std::min(out_tps_[m], cap);
  double frac = out_tps_[m] > 0 ? out / out_tps_[m] : 0;
  out_tokens_ += out * ms / 1000.0;
  in_tokens_ += in_tps_[m] * frac * ms / 1000.0;
}

}  // namespace ll::sim
