#include "step/decisions.h"

#include <fmt/format.h>

namespace ll::step {

void DecisionLog::Started(Time now, uint64_t lease, const alloc::Holder& h) {
  std::string nodes;
  for (const alloc::Share& s : h.shares) nodes += fmt::format(" n{}:{}", s.node.v, s.gpus);
  lines_.push_back(fmt::format("{} lease {} started {} pool {} gpus {} price {} max {} term_end {} on{}", now.ms, lease,
                               h.cls == alloc::HolderClass::kReserved ? "reserved" : "spot", h.pool.v, h.gpus,
                               h.price.micros, h.max_price.micros, h.term_end.ms, nodes));
}

void DecisionLog::Noticed(Time now, uint64_t lease, const alloc::Holder& h, alloc::NoticeReason reason) {
  lines_.push_back(fmt::format("{} lease {} noticed {} reclaim_at {}", now.ms, lease, alloc::NoticeReasonName(reason),
                               h.reclaim_at.ms));
}

void DecisionLog::Ended(Time now, uint64_t lease, alloc::EndReason reason) {
  lines_.push_back(fmt::format("{} lease {} ended {}", now.ms, lease, static_cast<int>(reason)));
}

void DecisionLog::Repriced(Time now, uint64_t lease, Money price) {
  lines_.push_back(fmt::format("{} lease {} repriced {}", now.ms, lease, price.micros));
}

void DecisionLog::Price(Time now, Money price) {
  if (price == price_) return;
  price_ = price;
  lines_.push_back(fmt::format("{} price {}", now.ms, price.micros));
}

void DecisionLog::Refused(Time now, size_t action, std::string_view code) {
  lines_.push_back(fmt::format("{} action {} refused {}", now.ms, action, code));
}

}  // namespace ll::step
