// The ledger of a standalone `landlord gateway`: the control plane's admin API over HTTP.
//
// Keys are checked with `POST /admin/keys/verify` and cached for `key_ttl` (5 s; a wrong key
// for 2 s), counted from the control plane's answer: a key revoked (or expired) there is refused
// here at most `key_ttl` later. One verification per key is in flight at a time; requests that
// arrive meanwhile wait for its answer; a request is admitted with `POST /admin/holds` carrying its share of the key's
// rate limits (kept by the control plane for every gateway) and its budget hold (durable on the
// control plane before the request goes upstream); settlements `POST /admin/holds/{id}/settle`
// with the usage records, retried until the control plane acknowledges them (the usage keys
// make a retry count once); the control plane acknowledges once they are committed, and only
// then does the gateway complete the answer (`durable`). The HTTP calls run on `workers`
// threads, each with its own keep-alive connection; their answers come back on the gateway's
// io_context.
//
// Where the control plane is comes from `locate`: a fixed URL (`--control-plane`) or the
// leader the shared store names (`--store`). A call that cannot reach it asks `locate` again
// before the next one, so the gateway follows a standby that took over.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "cli/http_client.h"
#include "core/clock.h"
#include "gateway/gateway.h"

namespace ll::cli {

class RemoteAccounts final : public gateway::Accounts {
 public:
  using Locator = std::function<Result<Url>()>;
  // `locate` is called from the worker threads, one at a time.
  RemoteAccounts(boost::asio::io_context& ioc, Locator locate, std::string admin_key, const Clock* clock,
                 int workers = 16, Duration key_ttl = kKeyTtl);
  // How long a verified key is trusted without asking again: the bound on how long a revoked
  // key still works on a standalone gateway (docs/api.md).
  static constexpr Duration kKeyTtl = Duration::Seconds(5);
  ~RemoteAccounts() override;

  void Authenticate(const std::string& api_key, std::function<void(Status, std::optional<Key>)> done) override;
  // The wire protocol takes a request's share of the rate limits and its hold in one call
  // (`POST /admin/holds`): TakeLimits makes it, and keeps the hold's answer for Hold, which the
  // budget filter asks right after.
  void TakeLimits(const Admission& a, std::function<void(gateway::RateLimits::Decision)> done) override;
  void GiveBackLimits(const std::string& hold_id) override;
  void Hold(const Admission& a, std::function<void(Status)> done) override;
  void Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) override;

  // One call to the control plane on a worker thread, following the leader like every call (one
  // that could not connect is tried once more at the address asked again); `done` runs on the
  // gateway's thread with the answer, or the error when none came. Stop waits for it.
  void Call(std::string method, std::string target, std::string body,
            std::function<void(Result<HttpResponse>)> done);

  // Settlements not yet acknowledged (shutdown waits for them, up to a point).
  int64_t unsettled() const;
  // Stops the workers once the queue is empty or `wait` has passed.
  void Stop(Duration wait);

 private:
  class Leader;  // a worker's connection to wherever the control plane is now
  void Run();
  void Enqueue(std::function<void(Leader&)> job);
  // `POST /admin/holds`: holds `a.amount`, and takes the request's share of the key's rate
  // limits first when `with_limits` (the control plane gives it back itself when it refuses the
  // hold). `done` runs on the gateway's thread: the hold's status (not Ok when the limits refused:
  // the decision says so) and the limits' decision.
  void PostHold(const Admission& a, bool with_limits, std::function<void(Status, gateway::RateLimits::Decision)> done);
  // POSTs the settlement until the control plane acknowledges it (20 tries, backing off to
  // 3.2 s: a standby has taken over well within that); counts `unsettled_` down. Ok once
  // acknowledged (committed on the control plane).
  Status SettleUntilAcknowledged(Leader& c, const std::string& hold_id, const std::string& body);

  boost::asio::io_context& ioc_;
  Locator locate_;
  std::mutex locate_mu_;
  std::string admin_key_;
  const Clock* clock_;
  Duration key_ttl_;
  // The key cache: only the gateway's thread touches it.
  struct Cached {
    std::optional<Key> key;
    Time until;
  };
  std::unordered_map<std::string, Cached> keys_;
  // Keys being verified now, with the requests waiting for the answer (gateway thread only).
  std::unordered_map<std::string, std::vector<std::function<void(Status, std::optional<Key>)>>> verifying_;
  // Holds made by TakeLimits that Hold has not asked for yet, with their answers (gateway
  // thread only).
  std::unordered_map<std::string, Status> admitted_;
  // Work for the HTTP threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(Leader&)>> jobs_;
  bool stopping_ = false;
  int64_t unsettled_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace ll::cli
