// The ledger of a standalone `landlord gateway` with slices (docs/scale-out.md): requests are
// admitted and settled in memory against a slice of their key's balance and rate limits that
// this gateway leases from the control plane (gateway::Slice), and their usage goes to it in
// batches (`POST /admin/slices/{id}`): one slice per key, with one report on its way at a time,
// the usage settled meanwhile going with the next right after it. An answer's end still waits
// for its usage to be durable on the control plane: the report carrying it is acknowledged
// after its commit. A request the slice cannot cover (none yet, the key running
// low, the lease near its end) is admitted per request through RemoteAccounts, exactly as
// without slices, while the slice grows in the background.
//
// Slices are renewed by their reports (and by an empty one before a third of the lease is
// left), returned after `idle` without requests, and at shutdown (CloseAll). Slice ids are
// `sl_<this gateway's random id>_<n>`: unique across gateways and restarts.
//
// Single-threaded: everything runs on the gateway's io_context; the HTTP calls run on
// RemoteAccounts' workers.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "cli/remote_accounts.h"
#include "core/clock.h"
#include "gateway/options.h"
#include "gateway/slice.h"
#include "market/price_book.h"

namespace ll::cli {

class SliceAccounts final : public gateway::Accounts {
 public:
  // `remote` and `clock` must outlive the object.
  // `flush`: how long usage may wait for more before its report goes (the group commit window
  // of `meter_flush_ms`, as serve's own gateway has).
  SliceAccounts(boost::asio::io_context& ioc, RemoteAccounts& remote, market::PriceBook prices, const Clock* clock,
                gateway::SliceOptions options, Duration flush);
  ~SliceAccounts() override;

  void Authenticate(const std::string& api_key, std::function<void(Status, std::optional<Key>)> done) override {
    remote_.Authenticate(api_key, std::move(done));
  }
  void TakeLimits(const Admission& a, std::function<void(gateway::RateLimits::Decision)> done) override;
  void GiveBackLimits(const std::string& hold_id) override;
  void Hold(const Admission& a, std::function<void(Status)> done) override;
  void Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) override;

  // Returns every slice (after its requests end): shutdown. closed() once every one is.
  void CloseAll();
  bool closed() const { return slices_.empty(); }
  const std::string& gateway_id() const { return gateway_id_; }

 private:
  struct Entry;
  Entry* Current(const Admission& a);
  void Pump(Entry& e);
  void Send(Entry& e, bool close);
  void Post(Entry& e);
  void OnAnswer(Entry& e, const Result<HttpResponse>& r);
  // The report's usage: durable (Ok) or not (the answers end with the error).
  void Finish(Entry& e, const Status& st);
  void Tick();
  void ArmFlush(Time at);
  void Forget(Entry* e);
  int64_t Cost(const Usage& u) const;

  boost::asio::io_context& ioc_;
  RemoteAccounts& remote_;
  market::PriceBook prices_;
  const Clock* clock_;
  gateway::SliceOptions options_;
  std::string gateway_id_;
  uint64_t next_slice_ = 0;
  bool closing_ = false;
  std::vector<std::unique_ptr<Entry>> slices_;            // every slice with something left to do
  std::unordered_map<std::string, Entry*> by_key_;        // key id → its slice that admits
  struct Admitted {
    Entry* entry;
    gateway::SliceUnits units;
  };
  std::unordered_map<std::string, Admitted> admitted_;    // hold id → its admission from a slice
  boost::asio::steady_timer timer_;
  Duration flush_;
  boost::asio::steady_timer flush_timer_;
  bool flush_armed_ = false;
  Time flush_at_;
};

}  // namespace ll::cli
