// Persistence behind one interface (LevelDB `Env` style): the control plane's tenants, API
// keys, leases with their event history, injected owner jobs and a few settings. One
// implementation per database: sqlite/ (the embedded default) and postgres/.
//
// Durability contract: when Commit() returns Ok, everything in the batch is on disk (a kill -9
// right after loses none of it) and either all of the batch is applied or none of it.
// Thread-safety: an instance is used from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/lease.h"
#include "core/status.h"
#include "core/time.h"

namespace ll::store {

struct TenantRecord {
  std::string id;  // "ten_…"
  std::string name;
  Time created;
};

struct KeyRecord {
  std::string id;         // "key_…"
  std::string tenant_id;  // empty for the admin key
  std::string hash;       // hex of the key's hash; the key itself is never stored
  bool admin = false;
  Time created;
  int64_t rpm = 0, tpm = 0;  // the model API's limits for this key (0: the gateway's defaults)
  std::string name{};        // the owner's label ("" for none)
  std::string prefix{};      // the key's first characters ("ll_1a2b"), to tell keys apart; "" if unknown
  Time expires = kTimeMax;   // refused from then on (server clock); kTimeMax: never
  Time revoked = kTimeMax;   // when it was revoked; kTimeMax: not revoked
};

// Revokes a stored key from `at` on. A key stays revoked at its first revocation time; an id
// not stored is ignored (the control plane revokes only keys it loaded or created).
struct KeyRevocation {
  std::string key_id;
  Time at;
};

// A lease as persisted. Times are kTimeMax when not (yet) set.
struct LeaseRecord {
  std::string id;         // "lease_…"
  std::string tenant_id;
  LeaseKind kind = LeaseKind::kSpot;
  LeaseState state = LeaseState::kScheduled;  // see docs/api.md: the lease state machine
  int pool = 0;
  int gpus = 0;
  int64_t price_micros = 0;      // per GPU-hour now
  int64_t max_price_micros = 0;  // spot only
  Time created = kTimeMax;
  Time started = kTimeMax;
  Time noticed_at = kTimeMax;
  Time reclaim_at = kTimeMax;
  Time term_end = kTimeMax;  // reserved
  Time ended = kTimeMax;
  LeaseEnd end_reason = LeaseEnd::kNone;
  std::string placement;   // "node:gpus,node:gpus", node = index into the fleet
  std::string workload{};  // JSON {"spec", "status"} of the lease's workload; "" for none
  NoticeTier notice_tier = NoticeTier::kStandard;  // spot: which notice it gets
};

// The lease's kind, state and end reason from their stored names; an error names the lease
// and the column.
Status ReadLeaseNames(LeaseRecord& l, std::string_view kind, std::string_view state, std::string_view end_reason,
                      std::string_view notice_tier);

struct LeaseEventRecord {
  int64_t seq = 0;  // assigned by the store on Commit: increasing over all leases
  std::string lease_id;
  std::string tenant_id;
  std::string type;  // "created", "active", "reclaim_notice", "released", ...
  Time at;
  std::string data;  // JSON object text
};

struct InternalJobRecord {
  std::string id;  // "job_…"
  int pool = 0;
  int gpus = 0;
  Time start;
  Time end;
};

// A lease's price per GPU-hour from `at` on (its first at its start, then every change).
struct LeasePriceRecord {
  std::string lease_id;
  Time at;
  int64_t price_micros = 0;
};

// The spot clearing price from `at` on.
struct SpotPriceRecord {
  Time at;
  int64_t price_micros = 0;
};

// One billed piece of usage (the ledger's UsageEvent; token usage later). `key` is its
// idempotency key: a record whose key is already stored is ignored, so ingesting the same
// usage twice (a retry, a replay after a crash) counts it once.
struct UsageRecord {
  std::string key;
  std::string tenant_id;
  std::string source;  // "lease"
  std::string ref;     // the lease id
  std::string kind;    // "spot" | "reserved"
  std::string period;  // invoice period "YYYY-MM" (UTC)
  Time start, end;
  int64_t quantity = 0;  // GPU-milliseconds
  std::string unit;      // "gpu_ms"
  int64_t unit_price_micros = 0;  // per GPU-hour
  int64_t amount_micros = 0;
};

// A tenant's prepaid balance: what was credited and what was charged (never more).
struct BalanceRecord {
  std::string tenant_id;
  int64_t credited_micros = 0;
  int64_t charged_micros = 0;
};

// A reservation against a balance: open until settled (charged_micros then set).
struct HoldRecord {
  std::string id;
  std::string tenant_id;
  int64_t amount_micros = 0;
  int64_t charged_micros = -1;  // -1: open
  Time created;
  // A standalone gateway's slice (docs/scale-out.md) is a hold too: of part of the balance
  // (`amount_micros`: what it holds now; once closed, what it charged in all, as `charged_micros`)
  // and of the key's rate-limit buckets, leased until `expires` and renewed by the gateway.
  std::string key_id;                // the key whose limits it holds part of; "": one request's hold
  int64_t requests = 0, tokens = 0;  // the rate-limit units it holds now
  int64_t spent_micros = 0;          // what its usage charged so far
  int64_t seq = 0;                   // the gateway's last report applied
  Time expires;                      // past this, its rest returns to the balance (unless renewed)
  bool expired = false;              // closed by its expiry (not returned by its gateway)
  bool slice() const { return !key_id.empty(); }
};

// One atomic write. Keys are inserted (a second insert of an id is a conflict), then revoked;
// leases are upserted by id; events are appended (their seq is assigned
// in order); settings are upserted by key; usage is inserted unless its key is stored.
struct Batch {
  std::vector<TenantRecord> tenants;
  std::vector<KeyRecord> keys;
  std::vector<KeyRevocation> key_revocations;  // applied after `keys`
  std::vector<LeaseRecord> leases;
  std::vector<LeaseEventRecord> events;
  std::vector<InternalJobRecord> internal_jobs;
  std::vector<std::pair<std::string, std::string>> settings;
  std::vector<LeasePriceRecord> lease_prices;
  std::vector<SpotPriceRecord> spot_prices;
  std::vector<UsageRecord> usage;
  std::vector<BalanceRecord> balances;  // upserted by tenant
  std::vector<HoldRecord> holds;        // upserted by id
  int64_t usage_inserted = 0;  // out: how many usage records were new
  bool empty() const {
    return tenants.empty() && keys.empty() && key_revocations.empty() && leases.empty() && events.empty() &&
           internal_jobs.empty() && settings.empty() && lease_prices.empty() && spot_prices.empty() &&
           usage.empty() && balances.empty() && holds.empty();
  }
};

class Store {
 public:
  virtual ~Store() = default;

  // Applies `batch` atomically and durably. On success, the events' `seq` are filled in.
  virtual Status Commit(Batch& batch) = 0;

  virtual Result<std::vector<TenantRecord>> Tenants() = 0;
  virtual Result<std::vector<KeyRecord>> Keys() = 0;
  // Every lease (live and ended), in id order.
  virtual Result<std::vector<LeaseRecord>> Leases() = 0;
  // Events of one lease with seq > after, in seq order.
  virtual Result<std::vector<LeaseEventRecord>> LeaseEvents(const std::string& lease_id,
                                                            int64_t after) = 0;
  virtual Result<std::vector<InternalJobRecord>> InternalJobs() = 0;
  virtual Result<std::optional<std::string>> Setting(const std::string& key) = 0;
  // The largest event seq committed so far (0 if none).
  virtual Result<int64_t> LastEventSeq() = 0;
  // Every lease's price points, by lease then time.
  virtual Result<std::vector<LeasePriceRecord>> LeasePrices() = 0;
  // Spot price points with at in [from, to), in time order, preceded by the one in effect at
  // `from` (if any).
  virtual Result<std::vector<SpotPriceRecord>> SpotPrices(Time from, Time to) = 0;
  // Usage of `tenant_id` ("" for every tenant) in `period` ("" for every period), by start
  // then key.
  virtual Result<std::vector<UsageRecord>> Usage(const std::string& tenant_id, const std::string& period) = 0;
  virtual Result<std::vector<BalanceRecord>> Balances() = 0;
  virtual Result<std::vector<HoldRecord>> OpenHolds() = 0;
  virtual Result<std::optional<HoldRecord>> Hold(const std::string& id) = 0;
  // One page of Usage(): at most `limit` records after (after_start_ms, after_key) in the same
  // order (start then key); after_start_ms < 0 starts at the beginning.
  virtual Result<std::vector<UsageRecord>> UsagePage(const std::string& tenant_id, const std::string& period,
                                                     int64_t after_start_ms, const std::string& after_key,
                                                     int limit) = 0;
  // An invoice's lines: usage of `tenant_id` in `period` summed by (ref, kind, unit, unit
  // price), in that order; `amount_micros` and `quantity` are the sums.
  virtual Result<std::vector<UsageRecord>> InvoiceLines(const std::string& tenant_id, const std::string& period) = 0;
  // Every tenant's usage in `period` ("" for all time) summed by kind ("spot", "reserved",
  // "input_tokens", "output_tokens"): `quantity` and `amount_micros` are the sums.
  virtual Result<std::vector<UsageRecord>> UsageTotals(const std::string& period) = 0;
  // The invoice periods with usage of `tenant_id`, newest first, with their totals.
  virtual Result<std::vector<std::pair<std::string, int64_t>>> UsagePeriods(const std::string& tenant_id) = 0;

  // Leadership among the servers that share the database (one active control plane, issue 8):
  // true when this instance holds it, taking it if it is free; false while another holds it.
  // Held for as long as the store's connection lives, and the store's writes go through that
  // same connection, so a server that lost it can no longer write (fencing). A standby calls it
  // until it gets true; the leader calls it again to check. SQLite: one server per file.
  virtual Result<bool> TryLead() { return true; }
};

// Opens (creating if needed) the SQLite database at `path` in WAL mode with full
// synchronous commits and brings its schema up to date (numbered migrations, recorded in
// table `schema_migrations`). Errors name the file.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

// Connects to `url` (postgresql://…) and brings its schema up to date under an advisory lock
// (several servers may share the database). The connection is never silently re-opened: once
// it is lost, every call fails (a leader that lost it must not go on writing).
Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url);

// Whether `spec` names a PostgreSQL database (postgres:// or postgresql://).
bool IsPostgresUrl(std::string_view spec);
// `url` as messages and logs may show it: its password, in the authority or as a parameter,
// replaced by ***.
std::string RedactedUrl(const std::string& url);

}  // namespace ll::store
