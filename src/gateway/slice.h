// A standalone gateway's slice of one key (docs/scale-out.md): part of the tenant's balance,
// held durably on the control plane, and part of the key's rate-limit buckets, lent by it. The
// gateway admits and settles requests against the slice in memory and reports to the control
// plane in batches; this class is the slice's arithmetic, pure and deterministic (the caller
// brings the time and does the reporting: cli::SliceAccounts).
//
// The control plane answers each report with what the slice holds in all (absolute figures);
// the slice then counts as free what that leaves after the requests admitted and settled since
// the report was made. So an answer never double-counts what happened while it was on its way,
// and a price that differs between gateway and control plane corrects itself at the next answer.
//
// Sizing: the slice asks for what the key used over about `horizon` (a decayed sum of its recent
// requests, tokens and worst-case amounts: a few seconds' worth), never less than one request's
// worth, and gives back what is more than three times that. The control plane grants at most a
// quarter of what is available (gateway::GrantSlice), so near exhaustion slices shrink to
// nothing and the gateway asks per request.
#pragma once

#include <cstdint>
#include <string>

#include "core/money.h"
#include "core/time.h"

namespace ll::gateway {

// Money, requests and tokens: what a slice holds, asks for or gives back.
struct SliceUnits {
  int64_t micros = 0;
  int64_t requests = 0;
  int64_t tokens = 0;
  bool operator==(const SliceUnits&) const = default;
};

// What the key asked for lately, decayed with time constant `horizon`: the decayed sum is then
// about `horizon`'s worth at the recent rate.
class SliceRate {
 public:
  explicit SliceRate(Duration horizon) : horizon_(horizon) {}
  void Observe(Time now, const SliceUnits& one);
  // About `horizon`'s worth at the recent rate, and at least the largest request seen lately.
  SliceUnits Target(Time now) const;
  // The largest request seen lately (a slice smaller than it admits nothing).
  const SliceUnits& largest() const { return largest_; }

 private:
  double Decay(Time now) const;
  Duration horizon_;
  Time at_;
  double micros_ = 0, requests_ = 0, tokens_ = 0;
  SliceUnits largest_;
};

// One report on its way to the control plane, or the next one's contents.
struct SliceReport {
  int64_t seq = 0;
  int64_t spent_micros = 0;  // the cost of its usage, as the gateway priced it
  SliceUnits used;           // requests and tokens admitted since the last report (tokens: reserved)
  int64_t tokens_back = 0;   // reserved tokens settled requests did not use
  int64_t requests_back = 0; // requests admitted, then refused before a model saw them
  SliceUnits give_back;      // free units returned
  SliceUnits want, min;      // asked for more (none below `min`)
  bool close = false;        // the last: everything free returns, the slice ends
  int64_t settled = 0;       // requests whose usage it carries (the caller holds the records)
};

class Slice {
 public:
  // `rpm`/`tpm` 0: that limit is off (the slice needs none of it).
  Slice(std::string id, int64_t rpm, int64_t tpm, Duration horizon)
      : id_(std::move(id)), rpm_(rpm), tpm_(tpm), rate_(horizon) {}

  const std::string& id() const { return id_; }
  // Admits one request of `r` (1 request, its reserved tokens and worst-case amount) if the
  // slice covers it and its lease has more than a quarter of its term to run (the gateway's own
  // clock: from when the report that renewed it was sent); counts it as demand either way.
  // True: admitted (the caller settles or gives it back).
  bool Admit(Time now, const SliceUnits& r);
  // An admitted request ended: it cost `cost_micros` (the reservation's rest is free again)
  // and used `tokens` of its reserved ones.
  void Settle(const SliceUnits& admitted, int64_t cost_micros, int64_t tokens);
  // An admitted request refused before it reached a model: all of it comes back.
  void GiveBack(const SliceUnits& admitted);

  // The next report (seq + 1): what happened since the last, what to give back and to ask.
  // REQUIRES: no report on its way. `close`: every free unit returns.
  SliceReport MakeReport(Time now, bool close);
  // The control plane's answer to `sent` (made at `sent_at`): the slice holds `held` in all and
  // its lease runs `ttl` from when the report was sent (a bound the gateway's own clock keeps).
  void Acknowledge(const SliceReport& sent, Time sent_at, const SliceUnits& held, Duration ttl);
  // The slice is gone on the control plane (expired, closed): nothing more is admitted.
  void End() { ended_ = true; free_ = {}; }

  bool ended() const { return ended_; }
  bool reporting() const { return reporting_; }
  int64_t in_flight() const { return in_flight_; }
  const SliceUnits& free() const { return free_; }
  // Something to tell the control plane: usage or units since the last report.
  bool HasNews() const;
  // Worth a report now: news, or free below half of the target (grow), or the lease past a
  // third of its term with something held or in flight (renew).
  bool WantsReport(Time now) const;
  Time last_admitted() const { return last_admitted_; }
  Time lease_until() const { return lease_until_; }

 private:
  std::string id_;
  int64_t rpm_, tpm_;
  SliceRate rate_;
  SliceUnits free_;            // admit against this
  int64_t reserved_micros_ = 0;  // worst cases of admitted requests not settled
  int64_t pending_micros_ = 0;   // costs of settled requests not yet acknowledged (this report's too)
  SliceReport next_;           // what the next report carries so far
  int64_t seq_ = 0;
  bool reporting_ = false;
  bool ended_ = false;
  int64_t in_flight_ = 0;
  Time sent_at_, lease_until_, last_admitted_;
  Time next_ask_;  // after a refusal to grow: not before then
  Duration ttl_;
  // What the slice aims to have free: the target, at least one request's worth (limits off: 0).
  SliceUnits Desired(Time now) const;
};

}  // namespace ll::gateway
