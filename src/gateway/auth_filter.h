// auth: the tenant's API key, `Authorization: Bearer <key>`, checked by the ledger (KeyClient).
// 401 invalid_api_key (with `www-authenticate: Bearer`) for no key or a key that is not a
// tenant's; 503 ledger_unavailable when the ledger cannot say (worth a retry).
#pragma once

#include "gateway/filter.h"
#include "gateway/ledger_client.h"

namespace ll::gateway {

class AuthFilter final : public StreamFilter {
 public:
  // `keys` outlives the filter.
  explicit AuthFilter(KeyClient& keys) : keys_(keys) {}
  // Stops until the ledger answers; sets `key`.
  FilterStatus DecodeHeaders(RequestState& r) override;

 private:
  void RefuseKey(bool none);
  KeyClient& keys_;
};

}  // namespace ll::gateway
