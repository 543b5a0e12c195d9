// The SQLite store's reads: one cached statement each, every row read in column order.
#include <fmt/format.h>
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/status.h"
#include "core/time.h"
#include "store/sqlite/sqlite_store.h"
#include "store/sqlite/statement.h"
#include "store/store.h"

namespace ll::store::sqlite {
namespace {

constexpr const char* kSelectTenants = "SELECT id, name, created_ms FROM tenants ORDER BY id";
constexpr const char* kSelectKeys =
    "SELECT id, tenant_id, hash, admin, created_ms, rpm, tpm, name, prefix, expires_ms, revoked_ms FROM api_keys "
    "ORDER BY id";
constexpr const char* kSelectLeases =
    "SELECT id, tenant_id, kind, state, pool, gpus, price_micros, max_price_micros, created_ms, "
    "started_ms, noticed_at_ms, reclaim_at_ms, term_end_ms, ended_ms, end_reason, placement, workload, "
    "notice_tier FROM leases ORDER BY id";
constexpr const char* kSelectEvents =
    "SELECT seq, lease_id, tenant_id, type, at_ms, data FROM lease_events "
    "WHERE lease_id = ?1 AND seq > ?2 ORDER BY seq";
constexpr const char* kSelectJobs =
    "SELECT id, pool, gpus, start_ms, end_ms FROM internal_jobs ORDER BY id";
constexpr const char* kSelectSetting = "SELECT value FROM settings WHERE key = ?1";
constexpr const char* kSelectLastSeq = "SELECT COALESCE(MAX(seq), 0) FROM lease_events";
constexpr const char* kSelectLeasePrices =
    "SELECT lease_id, at_ms, price_micros FROM lease_prices ORDER BY lease_id, at_ms";
constexpr const char* kSelectSpotPrices =
    "SELECT at_ms, price_micros FROM spot_prices WHERE at_ms >= (SELECT COALESCE(MAX(at_ms), ?1) FROM spot_prices "
    "WHERE at_ms <= ?1) AND at_ms < ?2 ORDER BY at_ms";
constexpr const char* kSelectUsage =
    "SELECT key, tenant_id, source, ref, kind, period, start_ms, end_ms, quantity, unit, unit_price_micros, "
    "amount_micros FROM usage_events WHERE (?1 = '' OR tenant_id = ?1) AND (?2 = '' OR period = ?2) "
    "ORDER BY start_ms, key";
constexpr const char* kSelectBalances = "SELECT tenant_id, credited_micros, charged_micros FROM balances ORDER BY tenant_id";
constexpr const char* kSelectOpenHolds =
    "SELECT id, tenant_id, amount_micros, COALESCE(charged_micros, -1), created_ms, key_id, requests, tokens, "
    "spent_micros, seq, expires_ms, expired FROM holds WHERE charged_micros IS NULL ORDER BY id";
constexpr const char* kSelectHold =
    "SELECT id, tenant_id, amount_micros, COALESCE(charged_micros, -1), created_ms, key_id, requests, tokens, "
    "spent_micros, seq, expires_ms, expired FROM holds WHERE id = ?1";
constexpr const char* kSelectUsagePage =
    "SELECT key, tenant_id, source, ref, kind, period, start_ms, end_ms, quantity, unit, unit_price_micros, "
    "amount_micros FROM usage_events WHERE (?1 = '' OR tenant_id = ?1) AND (?2 = '' OR period = ?2) "
    "AND (start_ms, key) > (?3, ?4) ORDER BY start_ms, key LIMIT ?5";
constexpr const char* kSelectInvoiceLines =
    "SELECT ref, kind, unit, unit_price_micros, SUM(quantity), SUM(amount_micros) FROM usage_events "
    "WHERE tenant_id = ?1 AND period = ?2 GROUP BY ref, kind, unit, unit_price_micros "
    "ORDER BY ref, kind, unit, unit_price_micros";
constexpr const char* kSelectUsageTotals =
    "SELECT kind, SUM(quantity), SUM(amount_micros) FROM usage_events WHERE ?1 = '' OR period = ?1 "
    "GROUP BY kind ORDER BY kind";
constexpr const char* kSelectUsagePeriods =
    "SELECT period, SUM(amount_micros) FROM usage_events WHERE tenant_id = ?1 GROUP BY period ORDER BY period DESC";

void BindNothing(Binder&) {}

UsageRecord ReadUsage(Row& r) {
  UsageRecord u;
  u.key = r.Text();
  u.tenant_id = r.Text();
  u.source = r.Text();
  u.ref = r.Text();
  u.kind = r.Text();
  u.period = r.Text();
  u.start = r.At();
  u.end = r.At();
  u.quantity = r.Int();
  u.unit = r.Text();
  u.unit_price_micros = r.Int();
  u.amount_micros = r.Int();
  return u;
}

HoldRecord ReadHold(Row& r) {
  HoldRecord h;
  h.id = r.Text();
  h.tenant_id = r.Text();
  h.amount_micros = r.Int();
  h.charged_micros = r.Int();
  h.created = r.At();
  h.key_id = r.Text();
  h.requests = r.Int();
  h.tokens = r.Int();
  h.spent_micros = r.Int();
  h.seq = r.Int();
  h.expires = r.At();
  h.expired = r.Int() != 0;
  return h;
}

}  // namespace

Status SqliteStore::PrepareReads() {
  // One statement per line reads better than clang-format's columns.
  // clang-format off
  return PrepareEach({
      {kSelectTenants, &select_tenants_},
      {kSelectKeys, &select_keys_},
      {kSelectLeases, &select_leases_},
      {kSelectEvents, &select_events_},
      {kSelectJobs, &select_jobs_},
      {kSelectSetting, &select_setting_},
      {kSelectLastSeq, &select_last_seq_},
      {kSelectLeasePrices, &select_lease_prices_},
      {kSelectSpotPrices, &select_spot_prices_},
      {kSelectUsage, &select_usage_},
      {kSelectUsagePeriods, &select_usage_periods_},
      {kSelectBalances, &select_balances_},
      {kSelectOpenHolds, &select_open_holds_},
      {kSelectHold, &select_hold_},
      {kSelectUsagePage, &select_usage_page_},
      {kSelectInvoiceLines, &select_invoice_lines_},
      {kSelectUsageTotals, &select_usage_totals_},
  });
  // clang-format on
}

Result<std::vector<TenantRecord>> SqliteStore::Tenants() {
  return Query<TenantRecord>(select_tenants_, "read tenants", BindNothing, [](Row& r) {
    TenantRecord t;
    t.id = r.Text();
    t.name = r.Text();
    t.created = r.At();
    return t;
  });
}

Result<std::vector<KeyRecord>> SqliteStore::Keys() {
  return Query<KeyRecord>(select_keys_, "read keys", BindNothing, [](Row& r) {
    KeyRecord k;
    k.id = r.Text();
    k.tenant_id = r.Text();
    k.hash = r.Text();
    k.admin = r.Int() != 0;
    k.created = r.At();
    k.rpm = r.Int();
    k.tpm = r.Int();
    k.name = r.Text();
    k.prefix = r.Text();
    k.expires = r.AtOrMax();
    k.revoked = r.AtOrMax();
    return k;
  });
}

Result<std::vector<LeaseRecord>> SqliteStore::Leases() {
  Status bad;
  auto leases = Query<LeaseRecord>(select_leases_, "read leases", BindNothing, [&](Row& r) {
    LeaseRecord l;
    l.id = r.Text();
    l.tenant_id = r.Text();
    const std::string kind = r.Text(), state = r.Text();
    l.pool = static_cast<int>(r.Int());
    l.gpus = static_cast<int>(r.Int());
    l.price_micros = r.Int();
    l.max_price_micros = r.Int();
    l.created = r.AtOrMax();
    l.started = r.AtOrMax();
    l.noticed_at = r.AtOrMax();
    l.reclaim_at = r.AtOrMax();
    l.term_end = r.AtOrMax();
    l.ended = r.AtOrMax();
    const std::string end_reason = r.Text();
    l.placement = r.Text();
    l.workload = r.Text();
    const std::string tier = r.Text();
    if (Status st = ReadLeaseNames(l, kind, state, end_reason, tier); !st.ok() && bad.ok()) bad = st;
    return l;
  });
  if (!bad.ok()) return Status::Invalid(fmt::format("{}: {}", path_, bad.message()));
  return leases;
}

Result<std::vector<LeaseEventRecord>> SqliteStore::LeaseEvents(const std::string& lease_id,
                                                               int64_t after) {
  return Query<LeaseEventRecord>(
      select_events_, fmt::format("read events of lease `{}`", lease_id),
      [&](Binder& b) { b.Text(lease_id).Int(after); },
      [](Row& r) {
        LeaseEventRecord e;
        e.seq = r.Int();
        e.lease_id = r.Text();
        e.tenant_id = r.Text();
        e.type = r.Text();
        e.at = r.At();
        e.data = r.Text();
        return e;
      });
}

Result<std::vector<InternalJobRecord>> SqliteStore::InternalJobs() {
  return Query<InternalJobRecord>(select_jobs_, "read internal jobs", BindNothing, [](Row& r) {
    InternalJobRecord j;
    j.id = r.Text();
    j.pool = static_cast<int>(r.Int());
    j.gpus = static_cast<int>(r.Int());
    j.start = r.At();
    j.end = r.AtOrMax();
    return j;
  });
}

Result<std::optional<std::string>> SqliteStore::Setting(const std::string& key) {
  LL_ASSIGN_OR_RETURN(std::vector<std::string> values,
                      Query<std::string>(
                          select_setting_, fmt::format("read setting `{}`", key),
                          [&](Binder& b) { b.Text(key); }, [](Row& r) { return r.Text(); }));
  if (values.empty()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(values.front()));
}

Result<int64_t> SqliteStore::LastEventSeq() {
  LL_ASSIGN_OR_RETURN(std::vector<int64_t> seqs,
                      Query<int64_t>(select_last_seq_, "read the last event seq", BindNothing,
                                     [](Row& r) { return r.Int(); }));
  LL_CHECK(seqs.size() == 1);  // an aggregate without GROUP BY yields exactly one row
  return seqs.front();
}

Result<std::vector<LeasePriceRecord>> SqliteStore::LeasePrices() {
  return Query<LeasePriceRecord>(select_lease_prices_, "read lease prices", BindNothing, [](Row& r) {
    LeasePriceRecord p;
    p.lease_id = r.Text();
    p.at = r.At();
    p.price_micros = r.Int();
    return p;
  });
}

Result<std::vector<SpotPriceRecord>> SqliteStore::SpotPrices(Time from, Time to) {
  return Query<SpotPriceRecord>(
      select_spot_prices_, "read spot prices", [&](Binder& b) { b.At(from).At(to); },
      [](Row& r) {
        SpotPriceRecord p;
        p.at = r.At();
        p.price_micros = r.Int();
        return p;
      });
}


Result<std::vector<UsageRecord>> SqliteStore::Usage(const std::string& tenant_id, const std::string& period) {
  return Query<UsageRecord>(
      select_usage_, fmt::format("read usage of `{}`", tenant_id), [&](Binder& b) { b.Text(tenant_id).Text(period); },
      ReadUsage);
}

Result<std::vector<UsageRecord>> SqliteStore::UsagePage(const std::string& tenant_id, const std::string& period,
                                                        int64_t after_start_ms, const std::string& after_key,
                                                        int limit) {
  return Query<UsageRecord>(
      select_usage_page_, fmt::format("read usage of `{}`", tenant_id),
      [&](Binder& b) { b.Text(tenant_id).Text(period).Int(after_start_ms).Text(after_key).Int(limit); }, ReadUsage);
}

Result<std::vector<UsageRecord>> SqliteStore::UsageTotals(const std::string& period) {
  return Query<UsageRecord>(
      select_usage_totals_, "read usage totals", [&](Binder& b) { b.Text(period); },
      [&](Row& r) {
        UsageRecord u;
        u.period = period;
        u.kind = r.Text();
        u.quantity = r.Int();
        u.amount_micros = r.Int();
        return u;
      });
}

Result<std::vector<UsageRecord>> SqliteStore::InvoiceLines(const std::string& tenant_id, const std::string& period) {
  return Query<UsageRecord>(
      select_invoice_lines_, fmt::format("read the invoice of `{}` for {}", tenant_id, period),
      [&](Binder& b) { b.Text(tenant_id).Text(period); },
      [&](Row& r) {
        UsageRecord u;
        u.tenant_id = tenant_id;
        u.period = period;
        u.ref = r.Text();
        u.kind = r.Text();
        u.unit = r.Text();
        u.unit_price_micros = r.Int();
        u.quantity = r.Int();
        u.amount_micros = r.Int();
        return u;
      });
}

Result<std::vector<std::pair<std::string, int64_t>>> SqliteStore::UsagePeriods(const std::string& tenant_id) {
  return Query<std::pair<std::string, int64_t>>(
      select_usage_periods_, fmt::format("read invoice periods of `{}`", tenant_id),
      [&](Binder& b) { b.Text(tenant_id); },
      [](Row& r) {
        std::string period = r.Text();
        int64_t total = r.Int();
        return std::make_pair(std::move(period), total);
      });
}

Result<std::vector<BalanceRecord>> SqliteStore::Balances() {
  return Query<BalanceRecord>(select_balances_, "read balances", BindNothing, [](Row& r) {
    BalanceRecord b;
    b.tenant_id = r.Text();
    b.credited_micros = r.Int();
    b.charged_micros = r.Int();
    return b;
  });
}


Result<std::vector<HoldRecord>> SqliteStore::OpenHolds() {
  return Query<HoldRecord>(select_open_holds_, "read open holds", BindNothing, ReadHold);
}

Result<std::optional<HoldRecord>> SqliteStore::Hold(const std::string& id) {
  LL_ASSIGN_OR_RETURN(auto holds, Query<HoldRecord>(select_hold_, fmt::format("read hold `{}`", id),
                                                    [&](Binder& b) { b.Text(id); }, ReadHold));
  if (holds.empty()) return std::optional<HoldRecord>();
  return std::optional<HoldRecord>(std::move(holds.front()));
}

}  // namespace ll::store::sqlite
