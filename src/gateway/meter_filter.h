// meter: settles the request's hold to the tokens it used and records them once (MeterClient;
// idempotency key request id + attempt), interrupted answers included. An answer completes only
// once its usage is durable: when the answer's last bytes wait (Completion::last_bytes_wait)
// and tokens were used, completion stops until the ledger has committed them. Nothing used,
// nothing to lose: the answer does not wait for the hold's release.
#pragma once

#include "gateway/filter.h"
#include "gateway/ledger_client.h"
#include "gateway/options.h"

namespace ll::gateway {

class MeterFilter final : public StreamFilter {
 public:
  // `meter` and `stats` outlive the filter.
  MeterFilter(MeterClient& meter, GatewayStats& stats) : meter_(meter), stats_(stats) {}
  // Settles a held request (others have nothing to settle).
  FilterStatus EncodeComplete(RequestState& r, const Completion& c) override;

 private:
  MeterClient& meter_;
  GatewayStats& stats_;
};

}  // namespace ll::gateway
