// A Store that forwards every call to another (LevelDB `EnvWrapper`): derive from it and
// override only the calls to change, e.g. FaultStore (fault_store.h) fails commits on demand.
//
// Ownership: the wrapper owns the store it wraps (unlike `EnvWrapper`, whose Env is a
// process-wide singleton), so that a wrapped store is one object to keep alive and to close.
// Thread-safety: as the wrapped store's (one thread at a time).
#pragma once

#include <cstdint>
#include <memory>
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
  explicit StoreWrapper(std::unique_ptr<Store> target) : target_(std::move(target)) {
    LL_CHECK(target_ != nullptr);
  }

  // The wrapped store.
  Store* target() const { return target_.get(); }

  Status Commit(Batch& batch) override { return target_->Commit(batch); }
  Result<std::vector<TenantRecord>> Tenants() override { return target_->Tenants(); }
  Result<std::vector<KeyRecord>> Keys() override { return target_->Keys(); }
  Result<std::vector<LeaseRecord>> Leases() override { return target_->Leases(); }
  Result<std::vector<LeaseEventRecord>> LeaseEvents(const std::string& lease_id,
                                                    int64_t after) override {
    return target_->LeaseEvents(lease_id, after);
  }
  Result<std::vector<InternalJobRecord>> InternalJobs() override { return target_->InternalJobs(); }
  Result<std::optional<std::string>> Setting(const std::string& key) override {
    return target_->Setting(key);
  }
  Result<int64_t> LastEventSeq() override { return target_->LastEventSeq(); }
  Result<std::vector<LeasePriceRecord>> LeasePrices() override { return target_->LeasePrices(); }
  Result<std::vector<SpotPriceRecord>> SpotPrices(Time from, Time to) override {
    return target_->SpotPrices(from, to);
  }
  Result<std::vector<UsageRecord>> Usage(const std::string& tenant_id,
                                         const std::string& period) override {
    return target_->Usage(tenant_id, period);
  }
  Result<std::vector<BalanceRecord>> Balances() override { return target_->Balances(); }
  Result<std::vector<HoldRecord>> OpenHolds() override { return target_->OpenHolds(); }
  Result<std::optional<HoldRecord>> Hold(const std::string& id) override {
    return target_->Hold(id);
  }
  Result<std::vector<UsageRecord>> UsagePage(const std::string& tenant_id,
                                             const std::string& period, int64_t after_start_ms,
                                             const std::string& after_key, int limit) override {
    return target_->UsagePage(tenant_id, period, after_start_ms, after_key, limit);
  }
  Result<std::vector<UsageRecord>> InvoiceLines(const std::string& tenant_id,
                                                const std::string& period) override {
    return target_->InvoiceLines(tenant_id, period);
  }
  Result<std::vector<UsageRecord>> UsageTotals(const std::string& period) override {
    return target_->UsageTotals(period);
  }
  Result<std::vector<std::pair<std::string, int64_t>>> UsagePeriods(
      const std::string& tenant_id) override {
    return target_->UsagePeriods(tenant_id);
  }
  Result<bool> TryLead() override { return target_->TryLead(); }

 private:
  std::unique_ptr<Store> target_;
};

}  // namespace ll::store
