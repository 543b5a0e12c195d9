// LeaseBook: every lease the control plane knows, by creation order (a lease's index is its
// number less one, and the allocator's tag for its holder), by id and by tenant, and which are
// live (active or noticed: the market's bids, in creation order).
//
// Who may see a lease is decided here and only here: a tenant finds its own leases; another
// tenant's lease is `lease_not_found`, exactly as one that does not exist (404, never 403).
//
// Thread-safety: none; the control plane's one thread.
#pragma once

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ids.h"
#include "core/status.h"
#include "ledger/ledger.h"
#include "store/store.h"

namespace ll::control {

// Who makes a call: the owner (admin key) or a tenant.
struct Principal {
  bool admin = false;
  std::string tenant_id;
};

struct Lease {
  store::LeaseRecord rec;
  HolderId holder;
  bool releasing = false;   // the tenant asked; the end reports it as `released`
  std::string refused;      // why the fleet did not take its holder: the create call says so
  std::string lost;         // why the holder is gone without Landlord; the end reports it
  Time lost_at = kTimeMax;  // when (billing stops there)
  std::vector<ledger::PricePoint> prices;  // what it paid per GPU-hour, from its start
  size_t billed = 0;  // completed usage events already committed (the store ignores repeats)
};

class LeaseBook {
 public:
  size_t size() const { return leases_.size(); }
  Lease& operator[](size_t i) { return leases_[i]; }
  const Lease& operator[](size_t i) const { return leases_[i]; }

  // Appends `l` (its id and tenant set) and returns its index.
  size_t Add(Lease l);
  // Takes back the last lease added (a create that failed before anything was decided).
  void PopBack();

  std::optional<size_t> IndexOf(const std::string& id) const;
  // The caller's lease `id` (the owner: any), or `lease_not_found` naming `param`.
  Result<size_t> Find(const Principal& who, const std::string& id, std::string_view param = "id") const;
  // The caller's leases (the owner: all), newest first: at most `limit` created before the
  // lease `after` (all if empty; one the caller cannot see is an error naming `after`).
  struct Page {
    std::vector<size_t> leases;
    bool has_more = false;
  };
  Result<Page> List(const Principal& who, int limit, const std::string& after) const;
  // The tenant's lease indices, ascending.
  const std::vector<size_t>& OfTenant(const std::string& tenant_id) const;

  const std::set<size_t>& live() const { return live_; }
  bool IsLive(size_t i) const { return live_.contains(i); }
  void SetLive(size_t i, bool live) {
    if (live) {
      live_.insert(i);
    } else {
      live_.erase(i);
    }
  }

 private:
  std::vector<Lease> leases_;
  std::unordered_map<std::string, size_t> index_;
  std::unordered_map<std::string, std::vector<size_t>> by_tenant_;  // tenant id → indices, ascending
  std::set<size_t> live_;  // active or noticed, in creation order
};

}  // namespace ll::control
