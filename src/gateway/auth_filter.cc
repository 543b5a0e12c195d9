#include "gateway/auth_filter.h"

#include <fmt/format.h>

#include "gateway/http_util.h"

namespace ll::gateway {

FilterStatus AuthFilter::DecodeHeaders(RequestState& r) {
  const std::string_view token = BearerToken(r.request.authorization);
  if (token.empty() || token.size() > 256) {
    RefuseKey(token.empty());
    return FilterStatus::kStopIteration;
  }
  keys_.Authenticate(std::string(token),
                     [this, &r, keep = callbacks().KeepAlive()](Status st, std::optional<Key> k) {
                       if (!st.ok()) {  // the ledger could not say: not the client's fault, and worth a retry
                         callbacks().SendLocalReply(
                             {.status = 503,
                              .code = "ledger_unavailable",
                              .message = fmt::format("the API key cannot be checked now: {}", st.message()),
                              .type = "server_error"});
                         return;
                       }
                       if (!k) {
                         RefuseKey(false);
                         return;
                       }
                       r.key = std::move(*k);
                       callbacks().ContinueDecoding();
                     });
  return FilterStatus::kStopIteration;
}

void AuthFilter::RefuseKey(bool none) {
  callbacks().SendLocalReply(
      {.status = 401,
       .code = "invalid_api_key",
       .message = none ? "no API key: send `Authorization: Bearer <key>`" : "incorrect API key provided",
       .headers = OneHeader("www-authenticate", "Bearer")});
}

}  // namespace ll::gateway
