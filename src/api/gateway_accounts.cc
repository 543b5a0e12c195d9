#include "api/gateway_accounts.h"

namespace ll::api {

void GatewayAccounts::Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) {
  cp_.GatewaySettle(hold_id, usage);
  if (!cp_.HasPendingWrites()) {  // nothing of it to write (or already committed)
    if (durable) durable(Status::Ok());
    return;
  }
  if (durable) waiting_.push_back(std::move(durable));
  Schedule();
}

void GatewayAccounts::Schedule() {
  // The window's timer, or the end of the commit in flight, flushes what is settled meanwhile.
  if (armed_ || committing_) return;
  if (window_.ms <= 0) {
    Flush();
    return;
  }
  armed_ = true;
  timer_.expires_after(std::chrono::milliseconds(window_.ms));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    armed_ = false;
    if (!committing_) Flush();
  });
}

void GatewayAccounts::Flush() {
  timer_.cancel();
  armed_ = false;
  committing_ = true;
  std::vector<std::function<void(Status)>> done;
  done.swap(waiting_);
  // On the commit thread (UseCommitThread): the loop serves on while it syncs. A commit that
  // fails stops the process (fail-stop): when this runs, the usage is on disk.
  cp_.FlushAsync([this, done = std::move(done)] {
    committing_ = false;
    for (auto& f : done) f(Status::Ok());
    // What was settled during the commit has waited for it already: committed next, at once.
    if (!waiting_.empty() && !armed_) Flush();
  });
}

void GatewayAccounts::FlushNow() {
  Flush();
  cp_.FlushPending();
}

}  // namespace ll::api
