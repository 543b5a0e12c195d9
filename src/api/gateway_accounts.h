// The gateway's ledger inside `landlord serve`: keys, holds and metered usage go straight to
// the control plane (same thread). Usage is group-committed: the first settlement after a
// commit arms a timer of `window`, and everything settled until it fires is committed in one
// transaction (one fsync for many requests). Each settlement's `durable` callback runs after
// that commit, and the gateway holds back the answer's last bytes until then: a kill -9 loses
// only usage of answers that never completed (never a tenant's credit, never a hold's release:
// holds live in memory only).
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
  void Admit(const Admission& a, std::function<void(Status, gateway::RateLimits::Decision)> done) override {
    gateway::RateLimits::Decision d;
    Status st = cp_.GatewayAdmit(a, &d);
    done(st, d);
  }
  void Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) override;
  // Commits now and runs the settlements' callbacks (shutdown).
  void Flush();

 private:
  ControlPlane& cp_;
  boost::asio::steady_timer timer_;
  Duration window_;
  bool armed_ = false;
  std::vector<std::function<void(Status)>> waiting_;  // settled, durable at the next commit
};

}  // namespace ll::api
