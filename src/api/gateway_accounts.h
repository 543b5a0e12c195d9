// The gateway's ledger inside `landlord serve`: keys, rate limits, holds and metered usage go
// straight to the control plane (same thread), and every client answers at once. Usage is
// group-committed: the first settlement after a commit arms a timer of `window` (0: none), and
// everything settled until it fires is committed in one transaction (one fsync for many
// requests), on the control plane's commit thread when it has one (ControlPlane::UseCommitThread),
// so the event loop never waits for the sync. One commit is in flight at a time: what is settled
// while it syncs is committed right after it (so under load the batches grow by themselves, and
// a settlement waits at most for the sync in flight and its own). Each settlement's `durable` callback runs after that commit,
// and the gateway holds back the answer's last bytes until then: a kill -9 loses only usage of
// answers that never completed (never a tenant's credit, never a hold's release: holds live in
// memory only).
#pragma once

#include <functional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "api/control_plane.h"
#include "gateway/gateway.h"

namespace ll::api {

class GatewayAccounts final : public gateway::Accounts {
 public:
  GatewayAccounts(ControlPlane& cp, boost::asio::io_context& ioc, Duration window)
      : cp_(cp), timer_(ioc), window_(window) {}

  void Authenticate(const std::string& api_key, std::function<void(Status, std::optional<Key>)> done) override {
    done(Status::Ok(), cp_.TenantKey(api_key));
  }
  void TakeLimits(const Admission& a, std::function<void(gateway::RateLimits::Decision)> done) override {
    done(cp_.TakeLimits(a));
  }
  void GiveBackLimits(const std::string& hold_id) override {
    cp_.SettleLimits(hold_id, 0, /*request_back=*/true);
  }
  void Hold(const Admission& a, std::function<void(Status)> done) override { done(cp_.GatewayHold(a)); }
  void Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) override;
  // Hands what was settled to the commit (the window's end).
  void Flush();
  // Commits now, waits until it is durable and runs the settlements' callbacks (shutdown).
  void FlushNow();

 private:
  // A settlement is queued: flush now, at the window's end, or after the commit in flight.
  void Schedule();
  ControlPlane& cp_;
  boost::asio::steady_timer timer_;
  Duration window_;
  bool armed_ = false;
  bool committing_ = false;  // a commit is in flight (its end flushes what waits)
  std::vector<std::function<void(Status)>> waiting_;  // settled, durable at the next commit
};

}  // namespace ll::api
