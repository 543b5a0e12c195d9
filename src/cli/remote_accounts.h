// The ledger of a standalone `landlord gateway`: the control plane's admin API over HTTP.
//
// Keys are checked with `POST /admin/keys/verify` and cached (`key_ttl`; a wrong key for a
// shorter time); holds are `POST /admin/holds` (durable on the control plane before the request
// goes upstream); settlements `POST /admin/holds/{id}/settle` with the usage records, retried
// until the control plane acknowledges them (the usage keys make a retry count once). The HTTP
// calls run on `workers` threads, each with its own keep-alive connection; their answers come
// back on the gateway's io_context.
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
  RemoteAccounts(boost::asio::io_context& ioc, Url control_plane, std::string admin_key, const Clock* clock,
                 int workers = 4, Duration key_ttl = Duration::Seconds(30));
  ~RemoteAccounts() override;

  void Authenticate(const std::string& api_key, std::function<void(Status, std::optional<Key>)> done) override;
  void Hold(const std::string& hold_id, const std::string& tenant_id, Money amount,
            std::function<void(Status)> done) override;
  void Settle(const std::string& hold_id, const Usage& usage) override;

  // Settlements not yet acknowledged (shutdown waits for them, up to a point).
  int64_t unsettled() const;
  // Stops the workers once the queue is empty or `wait` has passed.
  void Stop(Duration wait);

 private:
  void Run();
  void Enqueue(std::function<void(HttpClient&)> job);

  boost::asio::io_context& ioc_;
  Url url_;
  std::string admin_key_;
  const Clock* clock_;
  Duration key_ttl_;
  // The key cache: only the gateway's thread touches it.
  struct Cached {
    std::optional<Key> key;
    Time until;
  };
  std::unordered_map<std::string, Cached> keys_;
  // Work for the HTTP threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(HttpClient&)>> jobs_;
  bool stopping_ = false;
  int64_t unsettled_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace ll::cli
