// The PostgreSQL implementation of Store with libpqxx (`landlord serve --store postgresql://…`,
// `landlord gateway --store …`). The same schema as sqlite/ in PostgreSQL's dialect and the same
// numbered migrations, applied under an advisory lock so that several servers may start at
// once. One transaction per Commit() (synchronous_commit on: durable when it returns); events
// are numbered without gaps under a second advisory lock. The store contract suite
// (tests/store, StoreContract/postgres) runs it against a throwaway server.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iterator>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "store/store.h"

namespace ll::store {
namespace {

constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_ms BIGINT NOT NULL);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY, tenant_id TEXT REFERENCES tenants(id), hash TEXT NOT NULL UNIQUE,
  admin SMALLINT NOT NULL CHECK (admin IN (0, 1)), created_ms BIGINT NOT NULL);
CREATE INDEX api_keys_by_tenant ON api_keys(tenant_id);
CREATE TABLE leases (
  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), kind TEXT NOT NULL, state TEXT NOT NULL,
  pool BIGINT NOT NULL, gpus BIGINT NOT NULL, price_micros BIGINT NOT NULL, max_price_micros BIGINT NOT NULL,
  created_ms BIGINT, started_ms BIGINT, noticed_at_ms BIGINT, reclaim_at_ms BIGINT, term_end_ms BIGINT,
  ended_ms BIGINT, end_reason TEXT NOT NULL, placement TEXT NOT NULL);
CREATE INDEX leases_by_tenant ON leases(tenant_id);
CREATE TABLE lease_events (
  seq BIGINT PRIMARY KEY, lease_id TEXT NOT NULL REFERENCES leases(id),
  tenant_id TEXT NOT NULL, type TEXT NOT NULL, at_ms BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX lease_events_by_lease ON lease_events(lease_id, seq);
CREATE TABLE internal_jobs (id TEXT PRIMARY KEY, pool BIGINT NOT NULL, gpus BIGINT NOT NULL,
  start_ms BIGINT NOT NULL, end_ms BIGINT);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
)sql",
    R"sql(
CREATE TABLE lease_prices (lease_id TEXT NOT NULL REFERENCES leases(id), at_ms BIGINT NOT NULL,
  price_micros BIGINT NOT NULL CHECK (price_micros >= 0), PRIMARY KEY (lease_id, at_ms));
CREATE TABLE spot_prices (at_ms BIGINT PRIMARY KEY, price_micros BIGINT NOT NULL CHECK (price_micros >= 0));
CREATE TABLE usage_events (
  key TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), source TEXT NOT NULL, ref TEXT NOT NULL,
  kind TEXT NOT NULL, period TEXT NOT NULL, start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL CHECK (end_ms >= start_ms),
  quantity BIGINT NOT NULL CHECK (quantity >= 0), unit TEXT NOT NULL,
  unit_price_micros BIGINT NOT NULL CHECK (unit_price_micros >= 0), amount_micros BIGINT NOT NULL CHECK (amount_micros >= 0));
CREATE INDEX usage_by_tenant_period ON usage_events(tenant_id, period, start_ms);
)sql",
    R"sql(
CREATE TABLE balances (
  tenant_id TEXT PRIMARY KEY REFERENCES tenants(id), credited_micros BIGINT NOT NULL CHECK (credited_micros >= 0),
  charged_micros BIGINT NOT NULL CHECK (charged_micros >= 0 AND charged_micros <= credited_micros));
CREATE TABLE holds (
  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), amount_micros BIGINT NOT NULL CHECK (amount_micros >= 0),
  charged_micros BIGINT CHECK (charged_micros IS NULL OR (charged_micros >= 0 AND charged_micros <= amount_micros)),
  created_ms BIGINT NOT NULL);
CREATE INDEX holds_open ON holds(tenant_id) WHERE charged_micros IS NULL;
)sql",
    R"sql(
ALTER TABLE api_keys ADD COLUMN rpm BIGINT NOT NULL DEFAULT 0 CHECK (rpm >= 0);
ALTER TABLE api_keys ADD COLUMN tpm BIGINT NOT NULL DEFAULT 0 CHECK (tpm >= 0);
)sql",
    // Key management: a label, the key's first characters, expiry and revocation (NULL: never).
    R"sql(
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN revoked_ms BIGINT;
)sql",
    // A lease's workload: {"spec", "status"} as JSON text ('': none).
    "ALTER TABLE leases ADD COLUMN workload TEXT NOT NULL DEFAULT '';",
    // A spot lease's notice tier (leases from before it were all `standard`).
    R"sql(
ALTER TABLE leases ADD COLUMN notice_tier TEXT NOT NULL DEFAULT 'standard'
  CHECK (notice_tier IN ('standard', 'flash'));
)sql",
    // A gateway's slice is a hold with a key, its units, what it spent, its report and expiry.
    R"sql(
ALTER TABLE holds ADD COLUMN key_id TEXT NOT NULL DEFAULT '', ADD COLUMN requests BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN tokens BIGINT NOT NULL DEFAULT 0, ADD COLUMN spent_micros BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN seq BIGINT NOT NULL DEFAULT 0, ADD COLUMN expires_ms BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN expired SMALLINT NOT NULL DEFAULT 0;
)sql",
};
constexpr int64_t kSchemaVersion = std::size(kMigrations);

std::optional<int64_t> MsOrNull(Time t) { return t == kTimeMax ? std::nullopt : std::optional<int64_t>(t.ms); }
Time AtOrMax(const pqxx::field& f) { return f.is_null() ? kTimeMax : Time{f.as<int64_t>()}; }
std::optional<std::string> TextOrNull(const std::string& s) { return s.empty() ? std::nullopt : std::optional(s); }

class PostgresStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::string& url) {
    try {
      std::unique_ptr<PostgresStore> s(new PostgresStore(url));
      // A lost connection stays lost: libpqxx 6 would otherwise re-open it quietly and drop the
      // leader's lock unnoticed. (Deprecated there because 7 never re-opens: the same behaviour.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
      s->conn_.inhibit_reactivation(true);
#pragma GCC diagnostic pop
      LL_RETURN_IF_ERROR(s->Migrate());
      s->Prepare();
      return std::unique_ptr<Store>(std::move(s));
    } catch (const std::exception& e) {
      return Status::Io(fmt::format("store `{}`: {}", RedactedUrl(url), e.what()));
    }
  }

  // Gives up leadership before the connection closes. The server drops a closed session's locks
  // only once its backend has noticed the disconnect, so without this a store opened right
  // after (a test, a restart in the same process) would stand by for a while. A failure has
  // nothing to report to: the connection is lost, and its locks with it.
  ~PostgresStore() override {
    (void)Guard("release leadership", [&] {
      if (!conn_.is_open()) return;
      pqxx::nontransaction n(conn_);
      n.exec("SELECT pg_advisory_unlock_all()");
    });
  }

  // One round trip for the whole batch (plus BEGIN and COMMIT, and the event numbering): every
  // statement is sent in one text, values quoted by libpq. A batch the database refuses is then
  // written again statement by statement, which names the record refused (or, if the refusal
  // was transient, commits it).
  Status Commit(Batch& batch) override {
    if (batch.empty()) return Status::Ok();
    try {
      CommitInOneText(batch);
      return Status::Ok();
    } catch (const pqxx::sql_error&) {
      return CommitStatementByStatement(batch);
    } catch (const std::exception& e) {
      return Status::Io(fmt::format("store `{}`: commit: {}", url_, e.what()));
    }
  }

  void CommitInOneText(Batch& batch) {
    pqxx::work w(conn_);
    std::vector<int64_t> seqs;
    int64_t next = 0;
    if (!batch.events.empty()) {
      w.exec_prepared("events_lock");
      next = w.exec_prepared1("events_max")[0].as<int64_t>();
    }
    auto q = [&](const std::string& v) { return w.quote(v); };
    auto n = [](int64_t v) { return std::to_string(v); };
    auto ms = [](Time t) { return t == kTimeMax ? std::string("NULL") : std::to_string(t.ms); };
    std::string sql;
    auto add = [&](std::string_view prepared, std::initializer_list<std::string> values) {
      sql += "EXECUTE ";
      sql += prepared;
      sql += '(';
      bool first = true;
      for (const auto& v : values) {
        if (!first) sql += ',';
        sql += v;
        first = false;
      }
      sql += ");\n";
    };
    for (const auto& t : batch.tenants) add("tenant", {q(t.id), q(t.name), n(t.created.ms)});
    for (const auto& k : batch.keys) {
      add("key", {q(k.id), k.tenant_id.empty() ? "NULL" : q(k.tenant_id), q(k.hash), n(k.admin ? 1 : 0),
                  n(k.created.ms), n(k.rpm), n(k.tpm), q(k.name), q(k.prefix), ms(k.expires), ms(k.revoked)});
    }
    for (const auto& r : batch.key_revocations) add("key_revoke", {q(r.key_id), n(r.at.ms)});
    for (const auto& l : batch.leases) {
      add("lease", {q(l.id), q(l.tenant_id), q(std::string(Name(l.kind))), q(std::string(Name(l.state))), n(l.pool), n(l.gpus), n(l.price_micros),
                    n(l.max_price_micros), ms(l.created), ms(l.started), ms(l.noticed_at), ms(l.reclaim_at),
                    ms(l.term_end), ms(l.ended), q(std::string(Name(l.end_reason))), q(l.placement), q(l.workload),
                    q(std::string(Name(l.notice_tier)))});
    }
    for (const auto& e : batch.events) {
      add("event", {n(++next), q(e.lease_id), q(e.tenant_id), q(e.type), n(e.at.ms), q(e.data)});
      seqs.push_back(next);
    }
    for (const auto& j : batch.internal_jobs) add("internal_job", {q(j.id), n(j.pool), n(j.gpus), n(j.start.ms), ms(j.end)});
    for (const auto& [k, v] : batch.settings) add("setting", {q(k), q(v)});
    for (const auto& p : batch.lease_prices) add("lease_price", {q(p.lease_id), n(p.at.ms), n(p.price_micros)});
    for (const auto& p : batch.spot_prices) add("spot_price", {n(p.at.ms), n(p.price_micros)});
    for (const auto& b : batch.balances) add("balance", {q(b.tenant_id), n(b.credited_micros), n(b.charged_micros)});
    for (const auto& h : batch.holds) {
      add("hold", {q(h.id), q(h.tenant_id), n(h.amount_micros), h.charged_micros < 0 ? "NULL" : n(h.charged_micros),
                   n(h.created.ms), q(h.key_id), n(h.requests), n(h.tokens), n(h.spent_micros), n(h.seq),
                   n(h.expires.ms), n(h.expired ? 1 : 0)});
    }
    // Last, so that its count is what the text returns: the usage records that were new.
    if (!batch.usage.empty()) {
      UsageArrays a(batch.usage);
      sql += "WITH ins AS (" + std::string(kUsageInsert) + "SELECT * FROM unnest(";
      for (int i = 0; i < 12; ++i) sql += (i > 0 ? "," : "") + q(a.column[i]) + "::" + kUsageTypes[i] + "[]";
      sql += ") ON CONFLICT(key) DO NOTHING RETURNING 1) SELECT count(*) FROM ins";
    }
    pqxx::result r = w.exec(sql);
    const int64_t inserted = batch.usage.empty() ? 0 : r[0][0].as<int64_t>();
    w.commit();
    for (size_t i = 0; i < seqs.size(); ++i) batch.events[i].seq = seqs[i];
    batch.usage_inserted = inserted;
  }

  Status CommitStatementByStatement(Batch& batch) {
    // Errors name the record being written, in the caller's terms (as the SQLite store does).
    std::string what = "commit: begin";
    return Guard(what, [&] {
      pqxx::work w(conn_);
      std::vector<int64_t> seqs;
      for (const auto& t : batch.tenants) {
        what = fmt::format("commit: tenant `{}`", t.id);
        w.exec_prepared("tenant", t.id, t.name, t.created.ms);
      }
      for (const auto& k : batch.keys) {
        what = fmt::format("commit: key `{}` (tenant `{}`)", k.id, k.tenant_id);
        w.exec_prepared("key", k.id, TextOrNull(k.tenant_id), k.hash, k.admin ? 1 : 0, k.created.ms, k.rpm, k.tpm,
                        k.name, k.prefix, MsOrNull(k.expires), MsOrNull(k.revoked));
      }
      for (const auto& r : batch.key_revocations) {
        what = fmt::format("commit: revocation of key `{}`", r.key_id);
        w.exec_prepared("key_revoke", r.key_id, r.at.ms);
      }
      for (const auto& l : batch.leases) {
        what = fmt::format("commit: lease `{}` (tenant `{}`)", l.id, l.tenant_id);
        w.exec_prepared("lease", l.id, l.tenant_id, std::string(Name(l.kind)), std::string(Name(l.state)), l.pool, l.gpus, l.price_micros, l.max_price_micros,
                        MsOrNull(l.created), MsOrNull(l.started), MsOrNull(l.noticed_at), MsOrNull(l.reclaim_at),
                        MsOrNull(l.term_end), MsOrNull(l.ended), std::string(Name(l.end_reason)), l.placement, l.workload,
                        std::string(Name(l.notice_tier)));
      }
      if (!batch.events.empty()) {
        // Seqs without gaps, as in SQLite: a sequence would be consumed by a batch that then
        // fails. Writers of events take turns (one control plane leads anyway).
        w.exec_prepared("events_lock");
        int64_t next = w.exec_prepared1("events_max")[0].as<int64_t>();
        for (const auto& e : batch.events) {
          what = fmt::format("commit: event `{}` of lease `{}`", e.type, e.lease_id);
          w.exec_prepared("event", ++next, e.lease_id, e.tenant_id, e.type, e.at.ms, e.data);
          seqs.push_back(next);
        }
      }
      for (const auto& j : batch.internal_jobs) {
        what = fmt::format("commit: internal job `{}`", j.id);
        w.exec_prepared("internal_job", j.id, j.pool, j.gpus, j.start.ms, MsOrNull(j.end));
      }
      for (const auto& [k, v] : batch.settings) {
        what = fmt::format("commit: setting `{}`", k);
        w.exec_prepared("setting", k, v);
      }
      for (const auto& p : batch.lease_prices) {
        what = fmt::format("commit: price of lease `{}`", p.lease_id);
        w.exec_prepared("lease_price", p.lease_id, p.at.ms, p.price_micros);
      }
      for (const auto& p : batch.spot_prices) {
        what = "commit: spot price";
        w.exec_prepared("spot_price", p.at.ms, p.price_micros);
      }
      what = "commit: usage";
      const int64_t inserted = InsertUsage(w, batch.usage, &what);
      for (const auto& b : batch.balances) {
        what = fmt::format("commit: balance of tenant `{}`", b.tenant_id);
        w.exec_prepared("balance", b.tenant_id, b.credited_micros, b.charged_micros);
      }
      for (const auto& h : batch.holds) {
        what = fmt::format("commit: hold `{}` (tenant `{}`)", h.id, h.tenant_id);
        w.exec_prepared("hold", h.id, h.tenant_id, h.amount_micros,
                        h.charged_micros < 0 ? std::nullopt : std::optional<int64_t>(h.charged_micros), h.created.ms,
                        h.key_id, h.requests, h.tokens, h.spent_micros, h.seq, h.expires.ms, h.expired ? 1 : 0);
      }
      what = "commit";
      w.commit();
      for (size_t i = 0; i < seqs.size(); ++i) batch.events[i].seq = seqs[i];
      batch.usage_inserted = inserted;
    });
  }

  // Usage is the bulk of what a busy ledger writes: all of a batch's records go in one
  // statement (arrays unnested), each skipped if its key is stored. If that fails, the records
  // are tried one by one (after a savepoint) so that the error names the one refused.
  int64_t InsertUsage(pqxx::work& w, const std::vector<UsageRecord>& usage, std::string* what) {
    if (usage.empty()) return 0;
    UsageArrays a(usage);
    w.exec_prepared("usage_savepoint");
    try {
      auto r = w.exec_prepared("usage_many", a.column[0], a.column[1], a.column[2], a.column[3], a.column[4],
                               a.column[5], a.column[6], a.column[7], a.column[8], a.column[9], a.column[10],
                               a.column[11]);
      return r.affected_rows();
    } catch (const pqxx::sql_error&) {
      w.exec_prepared("usage_rollback");  // back to the savepoint: find the record refused (that throws, naming it)
    }
    int64_t inserted = 0;
    for (const auto& u : usage) {
      *what = fmt::format("commit: usage `{}` (tenant `{}`)", u.key, u.tenant_id);
      inserted += w.exec_prepared("usage_one", u.key, u.tenant_id, u.source, u.ref, u.kind, u.period, u.start.ms,
                                  u.end.ms, u.quantity, u.unit, u.unit_price_micros, u.amount_micros)
                      .affected_rows();
    }
    return inserted;  // (every record went in one by one: the array statement's failure was transient)
  }

  // A batch's usage records as 12 PostgreSQL array literals, one per column of usage_events
  // in kUsageInsert's order: {"a","b"} (quotes and backslashes escaped) or {1,2}.
  struct UsageArrays {
    explicit UsageArrays(const std::vector<UsageRecord>& usage) {
      for (auto& c : column) c = "{";
      for (size_t i = 0; i < usage.size(); ++i) {
        const UsageRecord& u = usage[i];
        const char* sep = i == 0 ? "" : ",";
        Text(0, sep, u.key), Text(1, sep, u.tenant_id), Text(2, sep, u.source), Text(3, sep, u.ref);
        Text(4, sep, u.kind), Text(5, sep, u.period), Int(6, sep, u.start.ms), Int(7, sep, u.end.ms);
        Int(8, sep, u.quantity), Text(9, sep, u.unit), Int(10, sep, u.unit_price_micros), Int(11, sep, u.amount_micros);
      }
      for (auto& c : column) c += '}';
    }
    void Text(int i, const char* sep, const std::string& v) {
      column[i] += sep;
      column[i] += '"';
      for (char c : v) {
        if (c == '"' || c == '\\') column[i] += '\\';
        column[i] += c;
      }
      column[i] += '"';
    }
    void Int(int i, const char* sep, int64_t v) { fmt::format_to(std::back_inserter(column[i]), "{}{}", sep, v); }
    std::string column[12];
  };
  static constexpr const char* kUsageInsert =
      "INSERT INTO usage_events(key, tenant_id, source, ref, kind, period, start_ms, end_ms, quantity, unit, "
      "unit_price_micros, amount_micros) ";
  static constexpr const char* kUsageTypes[12] = {"text",   "text",   "text",   "text", "text",   "text",
                                                  "bigint", "bigint", "bigint", "text", "bigint", "bigint"};

  // The statements Commit() runs, prepared on the connection (libpqxx prepares each on first use).
  void Prepare() {
    conn_.prepare("tenant", "INSERT INTO tenants(id, name, created_ms) VALUES($1, $2, $3)");
    conn_.prepare("key",
                  "INSERT INTO api_keys(id, tenant_id, hash, admin, created_ms, rpm, tpm, name, prefix, expires_ms, "
                  "revoked_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)");
    conn_.prepare("key_revoke", "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, $2) WHERE id = $1");
    conn_.prepare("lease",
                  "INSERT INTO leases(id, tenant_id, kind, state, pool, gpus, price_micros, max_price_micros, created_ms, "
                  "started_ms, noticed_at_ms, reclaim_at_ms, term_end_ms, ended_ms, end_reason, placement, workload, "
                  "notice_tier) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) "
                  "ON CONFLICT(id) DO UPDATE SET "
                  "tenant_id = excluded.tenant_id, kind = excluded.kind, state = excluded.state, pool = excluded.pool, "
                  "gpus = excluded.gpus, price_micros = excluded.price_micros, max_price_micros = excluded.max_price_micros, "
                  "created_ms = excluded.created_ms, started_ms = excluded.started_ms, noticed_at_ms = excluded.noticed_at_ms, "
                  "reclaim_at_ms = excluded.reclaim_at_ms, term_end_ms = excluded.term_end_ms, ended_ms = excluded.ended_ms, "
                  "end_reason = excluded.end_reason, placement = excluded.placement, workload = excluded.workload, "
                  "notice_tier = excluded.notice_tier");
    conn_.prepare("events_lock", "SELECT pg_advisory_xact_lock(7342002)");
    conn_.prepare("events_max", "SELECT COALESCE(MAX(seq), 0) FROM lease_events");
    conn_.prepare("event", "INSERT INTO lease_events(seq, lease_id, tenant_id, type, at_ms, data) VALUES($1,$2,$3,$4,$5,$6)");
    conn_.prepare("internal_job",
                  "INSERT INTO internal_jobs(id, pool, gpus, start_ms, end_ms) VALUES($1,$2,$3,$4,$5) "
                  "ON CONFLICT(id) DO UPDATE SET pool = excluded.pool, gpus = excluded.gpus, "
                  "start_ms = excluded.start_ms, end_ms = excluded.end_ms");
    conn_.prepare("setting",
                  "INSERT INTO settings(key, value) VALUES($1,$2) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    conn_.prepare("lease_price",
                  "INSERT INTO lease_prices(lease_id, at_ms, price_micros) VALUES($1,$2,$3) "
                  "ON CONFLICT(lease_id, at_ms) DO UPDATE SET price_micros = excluded.price_micros");
    conn_.prepare("spot_price",
                  "INSERT INTO spot_prices(at_ms, price_micros) VALUES($1,$2) "
                  "ON CONFLICT(at_ms) DO UPDATE SET price_micros = excluded.price_micros");
    std::string arrays;
    for (int i = 0; i < 12; ++i) arrays += fmt::format("{}${}::{}[]", i > 0 ? ", " : "", i + 1, kUsageTypes[i]);
    conn_.prepare("usage_many",
                  fmt::format("{}SELECT * FROM unnest({}) ON CONFLICT(key) DO NOTHING", kUsageInsert, arrays));
    conn_.prepare("usage_savepoint", "SAVEPOINT usage");
    conn_.prepare("usage_rollback", "ROLLBACK TO SAVEPOINT usage");
    conn_.prepare("usage_one", std::string(kUsageInsert) +
                                   "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT(key) DO NOTHING");
    conn_.prepare("balance",
                  "INSERT INTO balances(tenant_id, credited_micros, charged_micros) VALUES($1,$2,$3) "
                  "ON CONFLICT(tenant_id) DO UPDATE SET credited_micros = excluded.credited_micros, "
                  "charged_micros = excluded.charged_micros");
    conn_.prepare("hold",
                  "INSERT INTO holds(id, tenant_id, amount_micros, charged_micros, created_ms, key_id, requests, tokens, "
                  "spent_micros, seq, expires_ms, expired) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) "
                  "ON CONFLICT(id) DO UPDATE SET amount_micros = excluded.amount_micros, charged_micros = "
                  "excluded.charged_micros, requests = excluded.requests, tokens = excluded.tokens, spent_micros = "
                  "excluded.spent_micros, seq = excluded.seq, expires_ms = excluded.expires_ms, expired = excluded.expired");
    // Now, not on first use: CommitInOneText runs them by name (EXECUTE) in one text.
    for (const char* name : {"tenant", "key", "key_revoke", "lease", "event", "internal_job", "setting", "lease_price", "spot_price",
                             "balance", "hold"}) {
      conn_.prepare_now(name);
    }
  }

  Result<std::vector<TenantRecord>> Tenants() override {
    return Rows<TenantRecord>("read tenants", "SELECT id, name, created_ms FROM tenants ORDER BY id", [](const pqxx::row& r) {
      return TenantRecord{r[0].c_str(), r[1].c_str(), Time{r[2].as<int64_t>()}};
    });
  }
  Result<std::vector<KeyRecord>> Keys() override {
    return Rows<KeyRecord>("read keys",
                           "SELECT id, tenant_id, hash, admin, created_ms, rpm, tpm, name, prefix, expires_ms, revoked_ms "
                           "FROM api_keys ORDER BY id",
                           [](const pqxx::row& r) {
                             KeyRecord k;
                             k.id = r[0].c_str();
                             k.tenant_id = r[1].is_null() ? "" : r[1].c_str();
                             k.hash = r[2].c_str();
                             k.admin = r[3].as<int>() != 0;
                             k.created = Time{r[4].as<int64_t>()};
                             k.rpm = r[5].as<int64_t>();
                             k.tpm = r[6].as<int64_t>();
                             k.name = r[7].c_str();
                             k.prefix = r[8].c_str();
                             k.expires = AtOrMax(r[9]);
                             k.revoked = AtOrMax(r[10]);
                             return k;
                           });
  }
  Result<std::vector<LeaseRecord>> Leases() override {
    return Rows<LeaseRecord>(
        "read leases",
        "SELECT id, tenant_id, kind, state, pool, gpus, price_micros, max_price_micros, created_ms, started_ms, "
        "noticed_at_ms, reclaim_at_ms, term_end_ms, ended_ms, end_reason, placement, workload, notice_tier FROM leases "
        "ORDER BY id",
        [](const pqxx::row& r) {
          LeaseRecord l;
          l.id = r[0].c_str();
          l.tenant_id = r[1].c_str();
          const std::string kind = r[2].c_str(), state = r[3].c_str();
          l.pool = r[4].as<int>();
          l.gpus = r[5].as<int>();
          l.price_micros = r[6].as<int64_t>();
          l.max_price_micros = r[7].as<int64_t>();
          l.created = AtOrMax(r[8]);
          l.started = AtOrMax(r[9]);
          l.noticed_at = AtOrMax(r[10]);
          l.reclaim_at = AtOrMax(r[11]);
          l.term_end = AtOrMax(r[12]);
          l.ended = AtOrMax(r[13]);
          l.placement = r[15].c_str();
          l.workload = r[16].c_str();
          if (Status st = ReadLeaseNames(l, kind, state, r[14].c_str(), r[17].c_str()); !st.ok()) throw std::runtime_error(st.message());
          return l;
        });
  }
  Result<std::vector<LeaseEventRecord>> LeaseEvents(const std::string& lease_id, int64_t after) override {
    return Rows<LeaseEventRecord>(
        "read events",
        "SELECT seq, lease_id, tenant_id, type, at_ms, data FROM lease_events WHERE lease_id = $1 AND seq > $2 ORDER BY seq",
        [](const pqxx::row& r) {
          return LeaseEventRecord{r[0].as<int64_t>(), r[1].c_str(), r[2].c_str(), r[3].c_str(),
                                  Time{r[4].as<int64_t>()}, r[5].c_str()};
        },
        lease_id, after);
  }
  Result<std::vector<InternalJobRecord>> InternalJobs() override {
    return Rows<InternalJobRecord>("read internal jobs",
                                   "SELECT id, pool, gpus, start_ms, end_ms FROM internal_jobs ORDER BY id",
                                   [](const pqxx::row& r) {
                                     return InternalJobRecord{r[0].c_str(), r[1].as<int>(), r[2].as<int>(),
                                                              Time{r[3].as<int64_t>()}, AtOrMax(r[4])};
                                   });
  }
  Result<std::optional<std::string>> Setting(const std::string& key) override {
    LL_ASSIGN_OR_RETURN(auto v, Rows<std::string>("read setting", "SELECT value FROM settings WHERE key = $1",
                                                  [](const pqxx::row& r) { return std::string(r[0].c_str()); }, key));
    if (v.empty()) return std::optional<std::string>();
    return std::optional<std::string>(v.front());
  }
  Result<int64_t> LastEventSeq() override {
    LL_ASSIGN_OR_RETURN(auto v, Rows<int64_t>("read the last event seq", "SELECT COALESCE(MAX(seq), 0) FROM lease_events",
                                              [](const pqxx::row& r) { return r[0].as<int64_t>(); }));
    return v.front();
  }
  Result<std::vector<LeasePriceRecord>> LeasePrices() override {
    return Rows<LeasePriceRecord>("read lease prices",
                                  "SELECT lease_id, at_ms, price_micros FROM lease_prices ORDER BY lease_id, at_ms",
                                  [](const pqxx::row& r) {
                                    return LeasePriceRecord{r[0].c_str(), Time{r[1].as<int64_t>()}, r[2].as<int64_t>()};
                                  });
  }
  Result<std::vector<SpotPriceRecord>> SpotPrices(Time from, Time to) override {
    return Rows<SpotPriceRecord>(
        "read spot prices",
        "SELECT at_ms, price_micros FROM spot_prices WHERE at_ms >= (SELECT COALESCE(MAX(at_ms), $1) FROM spot_prices "
        "WHERE at_ms <= $1) AND at_ms < $2 ORDER BY at_ms",
        [](const pqxx::row& r) { return SpotPriceRecord{Time{r[0].as<int64_t>()}, r[1].as<int64_t>()}; }, from.ms, to.ms);
  }
  Result<std::vector<UsageRecord>> Usage(const std::string& tenant_id, const std::string& period) override {
    return Rows<UsageRecord>("read usage",
                             std::string(kUsageColumns) +
                                 " FROM usage_events WHERE ($1 = '' OR tenant_id = $1) AND ($2 = '' OR period = $2) "
                                 "ORDER BY start_ms, key",
                             ReadUsage, tenant_id, period);
  }
  Result<std::vector<UsageRecord>> UsagePage(const std::string& tenant_id, const std::string& period,
                                             int64_t after_start_ms, const std::string& after_key, int limit) override {
    return Rows<UsageRecord>("read usage",
                             std::string(kUsageColumns) +
                                 " FROM usage_events WHERE ($1 = '' OR tenant_id = $1) AND ($2 = '' OR period = $2) "
                                 "AND (start_ms, key) > ($3, $4) ORDER BY start_ms, key LIMIT $5",
                             ReadUsage, tenant_id, period, after_start_ms, after_key, limit);
  }
  Result<std::vector<UsageRecord>> InvoiceLines(const std::string& tenant_id, const std::string& period) override {
    return Rows<UsageRecord>(
        "read an invoice",
        "SELECT ref, kind, unit, unit_price_micros, SUM(quantity), SUM(amount_micros) FROM usage_events "
        "WHERE tenant_id = $1 AND period = $2 GROUP BY ref, kind, unit, unit_price_micros "
        "ORDER BY ref, kind, unit, unit_price_micros",
        [&](const pqxx::row& r) {
          UsageRecord u;
          u.tenant_id = tenant_id;
          u.period = period;
          u.ref = r[0].c_str();
          u.kind = r[1].c_str();
          u.unit = r[2].c_str();
          u.unit_price_micros = r[3].as<int64_t>();
          u.quantity = r[4].as<int64_t>();
          u.amount_micros = r[5].as<int64_t>();
          return u;
        },
        tenant_id, period);
  }
  Result<std::vector<UsageRecord>> UsageTotals(const std::string& period) override {
    return Rows<UsageRecord>(
        "read usage totals",
        "SELECT kind, SUM(quantity), SUM(amount_micros) FROM usage_events WHERE $1 = '' OR period = $1 "
        "GROUP BY kind ORDER BY kind",
        [&](const pqxx::row& r) {
          UsageRecord u;
          u.period = period;
          u.kind = r[0].c_str();
          u.quantity = r[1].as<int64_t>();
          u.amount_micros = r[2].as<int64_t>();
          return u;
        },
        period);
  }
  Result<std::vector<std::pair<std::string, int64_t>>> UsagePeriods(const std::string& tenant_id) override {
    return Rows<std::pair<std::string, int64_t>>(
        "read invoice periods",
        "SELECT period, SUM(amount_micros) FROM usage_events WHERE tenant_id = $1 GROUP BY period ORDER BY period DESC",
        [](const pqxx::row& r) { return std::make_pair(std::string(r[0].c_str()), r[1].as<int64_t>()); }, tenant_id);
  }
  Result<std::vector<BalanceRecord>> Balances() override {
    return Rows<BalanceRecord>(
        "read balances", "SELECT tenant_id, credited_micros, charged_micros FROM balances ORDER BY tenant_id",
        [](const pqxx::row& r) { return BalanceRecord{r[0].c_str(), r[1].as<int64_t>(), r[2].as<int64_t>()}; });
  }
  Result<std::vector<HoldRecord>> OpenHolds() override {
    return Rows<HoldRecord>("read open holds",
                            std::string(kHoldColumns) + " FROM holds WHERE charged_micros IS NULL ORDER BY id", ReadHold);
  }
  Result<std::optional<HoldRecord>> Hold(const std::string& id) override {
    LL_ASSIGN_OR_RETURN(auto h, Rows<HoldRecord>("read a hold", std::string(kHoldColumns) + " FROM holds WHERE id = $1",
                                                 ReadHold, id));
    if (h.empty()) return std::optional<HoldRecord>();
    return std::optional<HoldRecord>(h.front());
  }

 private:
  static constexpr const char* kUsageColumns =
      "SELECT key, tenant_id, source, ref, kind, period, start_ms, end_ms, quantity, unit, unit_price_micros, "
      "amount_micros";
  static constexpr const char* kHoldColumns =
      "SELECT id, tenant_id, amount_micros, COALESCE(charged_micros, -1), created_ms, key_id, requests, tokens, "
      "spent_micros, seq, expires_ms, expired";
  static UsageRecord ReadUsage(const pqxx::row& r) {
    UsageRecord u;
    u.key = r[0].c_str();
    u.tenant_id = r[1].c_str();
    u.source = r[2].c_str();
    u.ref = r[3].c_str();
    u.kind = r[4].c_str();
    u.period = r[5].c_str();
    u.start = Time{r[6].as<int64_t>()};
    u.end = Time{r[7].as<int64_t>()};
    u.quantity = r[8].as<int64_t>();
    u.unit = r[9].c_str();
    u.unit_price_micros = r[10].as<int64_t>();
    u.amount_micros = r[11].as<int64_t>();
    return u;
  }
  static HoldRecord ReadHold(const pqxx::row& r) {
    return HoldRecord{.id = r[0].c_str(), .tenant_id = r[1].c_str(), .amount_micros = r[2].as<int64_t>(),
                      .charged_micros = r[3].as<int64_t>(), .created = Time{r[4].as<int64_t>()},
                      .key_id = r[5].c_str(), .requests = r[6].as<int64_t>(), .tokens = r[7].as<int64_t>(),
                      .spent_micros = r[8].as<int64_t>(), .seq = r[9].as<int64_t>(),
                      .expires = Time{r[10].as<int64_t>()}, .expired = r[11].as<int>() != 0};
  }
  // The URL without its password, for messages.
  explicit PostgresStore(const std::string& url) : url_(RedactedUrl(url)), conn_(url) {}

  template <typename Fn>
  Status Guard(const std::string& what, Fn fn) {
    try {
      fn();
      return Status::Ok();
    } catch (const pqxx::unique_violation& e) {
      return Status::Conflict(fmt::format("store `{}`: {}: {}", url_, what, e.what()));
    } catch (const pqxx::integrity_constraint_violation& e) {
      return Status::Invalid(fmt::format("store `{}`: {}: {}", url_, what, e.what()));
    } catch (const std::exception& e) {
      return Status::Io(fmt::format("store `{}`: {}: {}", url_, what, e.what()));
    }
  }

  template <typename T, typename ReadFn, typename... Args>
  Result<std::vector<T>> Rows(const std::string& what, const std::string& sql, ReadFn read, Args&&... args) {
    std::vector<T> out;
    Status st = Guard(what, [&] {
      pqxx::read_transaction t(conn_);
      for (const auto& row : t.exec_params(sql, std::forward<Args>(args)...)) out.push_back(read(row));
    });
    if (!st.ok()) return st;
    return out;
  }

  Status Migrate() {
    return Guard("migrate", [&] {
      pqxx::work w(conn_);
      // One migrator at a time across every server sharing the database.
      w.exec("SELECT pg_advisory_xact_lock(7342001)");
      w.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)");
      std::set<int64_t> applied;
      for (const auto& r : w.exec("SELECT version FROM schema_migrations")) applied.insert(r[0].as<int64_t>());
      if (!applied.empty() && *applied.rbegin() > kSchemaVersion) {
        throw std::runtime_error(fmt::format("schema version {} is newer than this build knows (up to {})",
                                             *applied.rbegin(), kSchemaVersion));
      }
      for (int64_t v = 1; v <= kSchemaVersion; ++v) {
        if (applied.contains(v)) continue;
        w.exec(kMigrations[v - 1]);
        w.exec_params("INSERT INTO schema_migrations(version, applied_at_ms) VALUES($1, "
                      "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)",
                      v);
      }
      w.commit();
    });
  }

  Result<bool> TryLead() override {
    bool held = false;
    Status st = Guard("leadership", [&] {
      pqxx::nontransaction n(conn_);
      // Already ours (a session-level lock is re-entrant: do not stack it), else take it if free.
      held = n.exec1("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                     "pid = pg_backend_pid() AND classid = 0 AND objid = " + std::to_string(kLeaderLock) + ")")[0]
                 .as<bool>();
      if (!held) held = n.exec1("SELECT pg_try_advisory_lock(" + std::to_string(kLeaderLock) + ")")[0].as<bool>();
    });
    if (!st.ok()) return st;
    return held;
  }

  static constexpr int64_t kLeaderLock = 7342003;  // (7342001: migrations, 7342002: event numbering)
  std::string url_;
  pqxx::connection conn_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url) { return PostgresStore::Open(url); }

std::string RedactedUrl(const std::string& url) {
  std::string out = url;
  const size_t scheme = out.find("://");
  const size_t at = out.find('@'), colon = out.find(':', scheme == std::string::npos ? 0 : scheme + 3);
  if (scheme != std::string::npos && at != std::string::npos && colon != std::string::npos && colon < at) {
    out = out.substr(0, colon) + ":***" + out.substr(at);
  }
  // libpq also takes the password as a parameter: ?password=… or &password=…
  for (size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
    if (p > 0 && out[p - 1] != '?' && out[p - 1] != '&') continue;
    const size_t end = out.find('&', p);
    out = out.substr(0, p + 9) + "***" + (end == std::string::npos ? "" : out.substr(end));
  }
  return out;
}

bool IsPostgresUrl(std::string_view spec) {
  return spec.starts_with("postgresql://") || spec.starts_with("postgres://");
}

}  // namespace ll::store
