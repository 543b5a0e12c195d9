// WORK IN PROGRESS (issue 8): a round trip of the PostgreSQL store against a throwaway server,
// to become the store contract suite run against SQLite and PostgreSQL alike. By hand:
//   initdb/pg_ctl as user postgres on a temp dir and a free port (see the session note), then
//   g++ -std=c++20 -Isrc tests/store/postgres_store_smoke.cc build/dev/src/store/libll_store.a \
//     build/dev/src/core/libll_core.a $(pkg-config --libs libpqxx) -lfmt -lsqlite3 -o smoke
//   ./smoke "postgresql:///postgres?host=DIR&port=PORT&user=postgres"
#include <cstdio>
#include <cstdlib>
#include "store/store.h"
using namespace ll;
using namespace ll::store;
#define CHECK(c) do { if (!(c)) { std::printf("FAIL %s:%d %s\n", __FILE__, __LINE__, #c); std::exit(1);} } while (0)
int main(int argc, char** argv) {
  auto s = OpenPostgresStore(argv[1]);
  if (!s.ok()) { std::printf("open: %s\n", s.status().message().c_str()); return 1; }
  auto again = OpenPostgresStore(argv[1]);  // migrations are idempotent
  CHECK(again.ok());
  Batch b;
  b.tenants.push_back({"ten_1", "acme", Time{1000}});
  b.keys.push_back({"key_1", "ten_1", "hash1", false, Time{1000}, 5, 7});
  b.keys.push_back({"key_0", "", "hash0", true, Time{1000}, 0, 0});
  LeaseRecord l; l.id = "lease_1"; l.tenant_id = "ten_1"; l.kind = "spot"; l.state = "active"; l.gpus = 8; l.created = Time{2000};
  b.leases.push_back(l);
  b.events.push_back({0, "lease_1", "ten_1", "active", Time{2000}, "{}"});
  b.events.push_back({0, "lease_1", "ten_1", "reclaim_notice", Time{3000}, "{}"});
  UsageRecord u; u.key = "u1"; u.tenant_id = "ten_1"; u.source = "lease"; u.ref = "lease_1"; u.kind = "spot";
  u.period = "2024-01"; u.start = Time{2000}; u.end = Time{3000}; u.quantity = 8000; u.unit = "gpu_ms"; u.amount_micros = 5;
  b.usage.push_back(u);
  b.balances.push_back({"ten_1", 100, 5});
  b.holds.push_back({"h1", "ten_1", 10, -1, Time{2500}});
  b.settings.emplace_back("clock", "{}");
  b.spot_prices.push_back({Time{1000}, 225600});
  Status st = (*s)->Commit(b);
  if (!st.ok()) { std::printf("commit: %s\n", st.message().c_str()); return 1; }
  CHECK(b.events[0].seq == 1 && b.events[1].seq == 2 && b.usage_inserted == 1);
  Batch dup; dup.usage.push_back(u);
  CHECK((*s)->Commit(dup).ok() && dup.usage_inserted == 0);  // exactly once
  CHECK((*s)->Tenants()->size() == 1);
  auto keys = (*s)->Keys(); CHECK(keys->size() == 2 && (*keys)[1].rpm == 5 && (*keys)[0].admin && (*keys)[0].tenant_id.empty());
  auto leases = (*s)->Leases(); CHECK(leases->size() == 1 && (*leases)[0].started == kTimeMax && (*leases)[0].created == Time{2000});
  CHECK((*s)->LeaseEvents("lease_1", 1)->size() == 1);
  CHECK(*(*s)->LastEventSeq() == 2);
  CHECK((*s)->Setting("clock")->value() == "{}");
  CHECK(!(*s)->Setting("nope")->has_value());
  CHECK((*s)->Usage("ten_1", "2024-01")->size() == 1);
  CHECK((*s)->UsagePage("", "", -1, "", 10)->size() == 1);
  CHECK((*s)->InvoiceLines("ten_1", "2024-01")->at(0).quantity == 8000);
  CHECK((*s)->UsageTotals("")->at(0).amount_micros == 5);
  CHECK((*s)->UsagePeriods("ten_1")->at(0).first == "2024-01");
  CHECK((*s)->OpenHolds()->size() == 1 && (*s)->Hold("h1")->value().charged_micros == -1);
  CHECK((*s)->SpotPrices(Time{5000}, Time{9000})->size() == 1);
  // A bad reference changes nothing (atomic).
  Batch bad; bad.tenants.push_back({"ten_2", "b", Time{1}}); LeaseRecord l2 = l; l2.id = "lease_2"; l2.tenant_id = "ten_x";
  bad.leases.push_back(l2);
  Status bst = (*s)->Commit(bad);
  CHECK(!bst.ok() && bst.code() == StatusCode::kInvalidArgument);
  CHECK((*s)->Tenants()->size() == 1);
  Batch dupid; dupid.tenants.push_back({"ten_1", "again", Time{1}});
  CHECK((*s)->Commit(dupid).code() == StatusCode::kConflict);
  std::printf("postgres store smoke: ok (%s)\n", bst.message().c_str());
  return 0;
}
