#include "api/gateway_accounts.h"

namespace ll::api {

void GatewayAccounts::Settle(const std::string& hold_id, const Usage& usage) {
  cp_.GatewaySettle(hold_id, usage);
  if (armed_ || !cp_.HasPendingWrites()) return;
  if (window_.ms <= 0) {
    cp_.FlushPending();
    return;
  }
  armed_ = true;
  timer_.expires_after(std::chrono::milliseconds(window_.ms));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    armed_ = false;
    if (!ec) cp_.FlushPending();
  });
}

void GatewayAccounts::Flush() {
  timer_.cancel();
  armed_ = false;
  cp_.FlushPending();
}

}  // namespace ll::api
