#include "gateway/slice.h"

#include <algorithm>
#include <cmath>

namespace ll::gateway {

double SliceRate::Decay(Time now) const {
  if (now <= at_ || horizon_.ms <= 0) return 1.0;
  return std::exp(-static_cast<double>((now - at_).ms) / static_cast<double>(horizon_.ms));
}

void SliceRate::Observe(Time now, const SliceUnits& one) {
  const double d = Decay(now);
  micros_ = micros_ * d + static_cast<double>(one.micros);
  requests_ = requests_ * d + static_cast<double>(one.requests);
  tokens_ = tokens_ * d + static_cast<double>(one.tokens);
  if (now > at_) at_ = now;
  // The largest request, forgotten as the demand decays to nothing.
  if (requests_ < 1.0) largest_ = {};
  largest_.micros = std::max(largest_.micros, one.micros);
  largest_.requests = std::max(largest_.requests, one.requests);
  largest_.tokens = std::max(largest_.tokens, one.tokens);
}

SliceUnits SliceRate::Target(Time now) const {
  const double d = Decay(now);
  return {.micros = std::max(largest_.micros, static_cast<int64_t>(std::ceil(micros_ * d))),
          .requests = std::max(largest_.requests, static_cast<int64_t>(std::ceil(requests_ * d))),
          .tokens = std::max(largest_.tokens, static_cast<int64_t>(std::ceil(tokens_ * d)))};
}

SliceUnits Slice::Desired(Time now) const {
  SliceUnits d = rate_.Target(now);
  if (rpm_ <= 0) d.requests = 0;
  if (tpm_ <= 0) d.tokens = 0;
  return d;
}

bool Slice::Admit(Time now, const SliceUnits& r) {
  rate_.Observe(now, r);
  last_admitted_ = now;
  if (ended_ || (lease_until_ - now).ms <= ttl_.ms / 4) return false;
  if (free_.micros < r.micros || (rpm_ > 0 && free_.requests < 1) || (tpm_ > 0 && free_.tokens < r.tokens)) {
    return false;
  }
  free_.micros -= r.micros;
  reserved_micros_ += r.micros;
  if (rpm_ > 0) {
    free_.requests -= 1;
    next_.used.requests += 1;
  }
  if (tpm_ > 0) {
    free_.tokens -= r.tokens;
    next_.used.tokens += r.tokens;
  }
  ++in_flight_;
  return true;
}

void Slice::Settle(const SliceUnits& admitted, int64_t cost_micros, int64_t tokens) {
  const int64_t cost = std::clamp<int64_t>(cost_micros, 0, admitted.micros);
  reserved_micros_ -= admitted.micros;
  pending_micros_ += cost;
  next_.spent_micros += cost;
  ++next_.settled;
  if (!ended_) free_.micros += admitted.micros - cost;
  if (tpm_ > 0) next_.tokens_back += admitted.tokens - tokens;
  --in_flight_;
}

void Slice::GiveBack(const SliceUnits& admitted) {
  reserved_micros_ -= admitted.micros;
  if (!ended_) free_.micros += admitted.micros;
  if (rpm_ > 0) next_.requests_back += 1;
  if (tpm_ > 0) next_.tokens_back += admitted.tokens;
  --in_flight_;
}

bool Slice::HasNews() const {
  return next_.settled > 0 || next_.used.requests > 0 || next_.used.tokens > 0 || next_.tokens_back != 0 ||
         next_.requests_back > 0;
}

bool Slice::WantsReport(Time now) const {
  if (reporting_) return false;
  if (next_.settled > 0) return true;  // usage waits to be durable: at once
  if (ended_) return HasNews();
  const bool holds = free_.micros > 0 || free_.requests > 0 || free_.tokens > 0 || in_flight_ > 0;
  if (holds && (lease_until_ - now).ms < ttl_.ms * 2 / 3) return true;  // renew the lease
  if (now < next_ask_) return false;
  const SliceUnits d = Desired(now);
  return free_.micros < d.micros / 2 || free_.requests < d.requests / 2 || free_.tokens < d.tokens / 2;
}

SliceReport Slice::MakeReport(Time now, bool close) {
  SliceReport r = next_;
  next_ = {};
  r.seq = ++seq_;
  r.close = close;
  const SliceUnits d = Desired(now);
  const SliceUnits largest = rate_.largest();
  auto size = [&](int64_t free, int64_t desired, int64_t one, int64_t* give, int64_t* want, int64_t* min) {
    if (close || ended_) {
      *give = std::max<int64_t>(0, free);
    } else if (free > 3 * desired) {
      *give = free - desired;
    } else if (free < desired) {
      *want = 2 * desired - free;
      *min = one;
    }
  };
  size(free_.micros, d.micros, largest.micros, &r.give_back.micros, &r.want.micros, &r.min.micros);
  size(free_.requests, d.requests, 1, &r.give_back.requests, &r.want.requests, &r.min.requests);
  size(free_.tokens, d.tokens, largest.tokens, &r.give_back.tokens, &r.want.tokens, &r.min.tokens);
  free_.micros -= r.give_back.micros;
  free_.requests -= r.give_back.requests;
  free_.tokens -= r.give_back.tokens;
  reporting_ = true;
  sent_at_ = now;
  return r;
}

void Slice::Acknowledge(const SliceReport& sent, Time sent_at, const SliceUnits& held, Duration ttl) {
  reporting_ = false;
  ttl_ = ttl;
  lease_until_ = sent_at + ttl;
  pending_micros_ -= sent.spent_micros;
  if (ended_) return;
  free_.micros = held.micros - reserved_micros_ - pending_micros_;
  free_.requests = held.requests - next_.used.requests;
  free_.tokens = held.tokens - next_.used.tokens;
  // Asked for more and got less than half of it: the key runs low; ask again a little later.
  const bool short_money = sent.want.micros > 0 && free_.micros < sent.want.micros / 2;
  const bool short_units = (sent.want.requests > 0 && free_.requests < sent.want.requests / 2) ||
                           (sent.want.tokens > 0 && free_.tokens < sent.want.tokens / 2);
  if (short_money || short_units) next_ask_ = sent_at + Duration::Millis(std::max<int64_t>(50, ttl.ms / 20));
}

}  // namespace ll::gateway
