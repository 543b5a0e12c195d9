#include "api/gateway_accounts.h"

namespace ll::api {

void GatewayAccounts::Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) {
  cp_.GatewaySettle(hold_id, usage);
  if (!cp_.HasPendingWrites()) {  // nothing of it to write (or already committed)
    if (durable) durable(Status::Ok());
    return;
  }
  if (durable) waiting_.push_back(std::move(durable));
  if (armed_) return;
  if (window_.ms <= 0) {
    Flush();
    return;
  }
  armed_ = true;
  timer_.expires_after(std::chrono::milliseconds(window_.ms));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Flush();
  });
}

void GatewayAccounts::Flush() {
  timer_.cancel();
  armed_ = false;
  // A commit that fails stops the process (fail-stop): past this line the usage is durable.
  cp_.FlushPending();
  std::vector<std::function<void(Status)>> done;
  done.swap(waiting_);
  for (auto& f : done) f(Status::Ok());
}

}  // namespace ll::api
