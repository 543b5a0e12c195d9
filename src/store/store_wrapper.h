// A Store that forwards every call to another (LevelDB `EnvWrapper`): derive from it and
// override only the calls to change, e.g. FaultStore (fault_store.h) fails commits on demand.
//
// Ownership: the wrapper owns the store it wraps (unlike `EnvWrapper`, whose Env is a
// process-wide singleton), so that a wrapped store is one object to keep alive and to close; a
// derived class may borrow one instead (CommitThread's serialized store).
// Thread-safety: as the wrapped store's (one thread at a time), unless Guard() locks.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/status.h"
#include "core/time.h"
#include "store/store.h"

namespace ll::store {

class StoreWrapper : public Store {
 public:
  // REQUIRES: `target` is not null.
  explicit StoreWrapper(std::unique_ptr<Store> target) : owned_(std::move(target)), target_(owned_.get()) {
    LL_CHECK(target_ != nullptr);
  }

  // The wrapped store.
  Store* target() const { return target_; }

  Status Commit(Batch& batch) override {
    auto guard = Guard();
    return target_->Commit(batch); }
  Result<std::vector<TenantRecord>> Tenants() override {
    auto guard = Guard();
    return target_->Tenants(); }
  Result<std::vector<KeyRecord>> Keys() override {
    auto guard = Guard();
    return target_->Keys(); }
  Result<std::vector<LeaseRecord>> Leases() override {
    auto guard = Guard();
    return target_->Leases(); }
  Result<std::vector<LeaseEventRecord>> LeaseEvents(const std::string& lease_id,
                                                    int64_t after) override {
    auto guard = Guard();
    return target_->LeaseEvents(lease_id, after);
  }
  Result<std::vector<InternalJobRecord>> InternalJobs() override {
    auto guard = Guard();
    return target_->InternalJobs(); }
  Result<std::optional<std::string>> Setting(const std::string& key) override {
    auto guard = Guard();
    return target_->Setting(key);
  }
  Result<int64_t> LastEventSeq() override {
    auto guard = Guard();
    return target_->LastEventSeq(); }
  Result<std::vector<LeasePriceRecord>> LeasePrices() override {
    auto guard = Guard();
    return target_->LeasePrices(); }
  Result<std::vector<SpotPriceRecord>> SpotPrices(Time from, Time to) override {
    auto guard = Guard();
    return target_->SpotPrices(from, to);
  }
  Result<std::vector<UsageRecord>> Usage(const std::string& tenant_id,
                                         const std::string& period) override {
    auto guard = Guard();
    return target_->Usage(tenant_id, period);
  }
  Result<std::vector<BalanceRecord>> Balances() override {
    auto guard = Guard();
    return target_->Balances(); }
  Result<std::vector<HoldRecord>> OpenHolds() override {
    auto guard = Guard();
    return target_->OpenHolds(); }
  Result<std::optional<HoldRecord>> Hold(const std::string& id) override {
    auto guard = Guard();
    return target_->Hold(id);
  }
  Result<std::vector<UsageRecord>> UsagePage(const std::string& tenant_id,
                                             const std::string& period, int64_t after_start_ms,
                                             const std::string& after_key, int limit) override {
    auto guard = Guard();
    return target_->UsagePage(tenant_id, period, after_start_ms, after_key, limit);
  }
  Result<std::vector<UsageRecord>> InvoiceLines(const std::string& tenant_id,
                                                const std::string& period) override {
    auto guard = Guard();
    return target_->InvoiceLines(tenant_id, period);
  }
  Result<std::vector<UsageRecord>> UsageTotals(const std::string& period) override {
    auto guard = Guard();
    return target_->UsageTotals(period);
  }
  Result<std::vector<std::pair<std::string, int64_t>>> UsagePeriods(
      const std::string& tenant_id) override {
    auto guard = Guard();
    return target_->UsagePeriods(tenant_id);
  }
  Result<bool> TryLead() override {
    auto guard = Guard();
    return target_->TryLead(); }

 protected:
  // Borrows `target` (it outlives the wrapper).
  explicit StoreWrapper(Store& target) : target_(&target) {}
  // Held around each forwarded call: nothing by default; a wrapper used from several threads
  // returns a lock.
  virtual std::unique_lock<std::mutex> Guard() { return {}; }

 private:
  std::unique_ptr<Store> owned_;
  Store* target_;
};

}  // namespace ll::store
