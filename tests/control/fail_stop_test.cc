// The control plane's fail-stop path (api/control_plane.h, "Durability"): when a commit fails,
// the process stops rather than go on with memory ahead of the disk, and a restart rebuilds
// from the store exactly what was acknowledged.
//
// Each crash is a death test: a child process opens a ControlPlane over a FaultStore wrapping
// a real SQLite file in a temp dir, acknowledges some writes, saves what it then sees (the
// owner's views and the store's records) to a file, arms a fault, and makes one more write,
// which must abort it at the fail-stop check. The parent then opens a fresh ControlPlane on the
// same file and must see what the child saved, byte for byte. The wall clock is a ManualClock
// that never moves, so a restart replays nothing and the views compare exactly. The parent
// holds no SQLite connection while a child runs (no connection crosses a fork).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "api/config.h"
#include "api/control_plane.h"
#include "core/clock.h"
#include "core/status.h"
#include "sim/trace.h"
#include "store/fault_store.h"
#include "store/store.h"

namespace ll::api {
namespace {

using nlohmann::json;
using store::CommitFault;

constexpr const char* kAdminKey = "ll_fail_stop_admin_key_0123456789";
// What the fail-stop check in ControlPlane::Flush prints as it aborts.
constexpr const char* kFailStop = "check failed: st\\.ok\\(\\)";

const Principal kOwner{.admin = true, .tenant_id = ""};

// A read of the store that must succeed, by value (a range-for over `Result::value() &&` of a
// temporary would read a destroyed vector).
template <typename T>
T Value(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : T{};
}

// A running control plane over a FaultStore on the test's file.
struct Plane {
  store::FaultStore* faults = nullptr;  // owned by `store`
  std::unique_ptr<store::Store> store;
  std::unique_ptr<ControlPlane> cp;
};

// Two tenants with a key each, a spot lease of `a`, a reserved lease of `b`, a credit of
// `a`: acknowledged writes to every kind of record the doomed writes touch. False (the reply
// on stderr) if one was refused.
bool AcknowledgedWrites(ControlPlane& cp) {
  auto ok = [](const char* what, const Reply& r) {
    if (r.status < 300) return true;
    std::fprintf(stderr, "%s: %d %s\n", what, r.status, r.body.dump().c_str());
    return false;
  };
  Reply a = cp.CreateTenant({{"name", "a"}});
  Reply b = cp.CreateTenant({{"name", "b"}});
  if (!ok("tenant a", a) || !ok("tenant b", b)) return false;
  const std::string ta = a.body["id"], tb = b.body["id"];
  return ok("key of a", cp.CreateKey({{"tenant_id", ta}, {"name", "a's"}})) &&
         ok("key of b", cp.CreateKey({{"tenant_id", tb}})) &&
         ok("spot lease",
            cp.CreateLease({.tenant_id = ta}, {{"gpus", 8}, {"max_price_per_gpu_hour", 2.5}})) &&
         ok("reserved lease",
            cp.CreateLease({.tenant_id = tb},
                           {{"kind", "reserved"}, {"gpus", 8}, {"duration_s", 3600}})) &&
         ok("credit", cp.Credit({{"tenant_id", ta}, {"amount", "10.00"}}));
}

// The id of the tenant named `name`, read from the store.
std::string TenantNamed(store::Store& s, const std::string& name) {
  for (const store::TenantRecord& t : Value(s.Tenants())) {
    if (t.name == name) return t.id;
  }
  return "";
}

// The id of the first key, and of the first lease, of the tenant named `name`.
std::string KeyOf(store::Store& s, const std::string& name) {
  const std::string tenant = TenantNamed(s, name);
  for (const store::KeyRecord& k : Value(s.Keys())) {
    if (!tenant.empty() && k.tenant_id == tenant) return k.id;
  }
  return "";
}
std::string LeaseOf(store::Store& s, const std::string& name) {
  const std::string tenant = TenantNamed(s, name);
  for (const store::LeaseRecord& l : Value(s.Leases())) {
    if (!tenant.empty() && l.tenant_id == tenant) return l.id;
  }
  return "";
}

// One write the process does not live through, made after AcknowledgedWrites.
struct DoomedWrite {
  const char* name;
  std::function<Reply(ControlPlane&, store::Store&)> write;
};

class FailStopDeathTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ll_fail_stop_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "mkdtemp " << tmpl;
    dir_ = tmpl;
    // A 32-GPU fleet whose owner runs one 8-GPU job for 35 days, served from day 15 (as the
    // fuzz target): spot and reserved leases both have room.
    std::ofstream(dir_ + "/owner.csv") << "submit_s,gpus,duration_s\n0,8,3024000\n";
    config_.nodes = 4;
    config_.gpus_per_node = 8;
    config_.history = Duration::Hours(360);
    config_.reserved_min_history = Duration::Hours(24);
    config_.notice = Duration::Seconds(20);
    config_.speed = 1;
    sim::ReadOptions ro;
    ro.fleet.nodes = 4;
    ro.fleet.gpus_per_node = 8;
    auto trace = sim::ReadTrace("csv:" + dir_ + "/owner.csv", ro);
    ASSERT_TRUE(trace.ok()) << trace.status().ToString();
    trace_ = std::make_unique<sim::Trace>(std::move(*trace));
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Opens the store and a control plane on it; with `fault` armed before the control plane
  // opens (which commits: its clock). Null `cp` (the reason on stderr) if either fails.
  Plane Open(std::optional<CommitFault> fault = std::nullopt) {
    Plane p;
    auto sqlite = store::OpenSqliteStore(dir_ + "/landlord.db");
    if (!sqlite.ok()) {
      std::fprintf(stderr, "store: %s\n", sqlite.status().ToString().c_str());
      return p;
    }
    auto faults = std::make_unique<store::FaultStore>(std::move(*sqlite));
    p.faults = faults.get();
    p.store = std::move(faults);
    if (fault) p.faults->Inject(*fault);
    auto cp = ControlPlane::Open(config_, *trace_, p.store.get(), &wall_, kAdminKey);
    if (!cp.ok()) {
      std::fprintf(stderr, "control plane: %s\n", cp.status().ToString().c_str());
      return p;
    }
    p.cp = std::move(*cp);
    return p;
  }

  // Everything acknowledged, as the owner sees it through the control plane and as the store
  // holds it. The same text before a crash and after the restart means nothing was lost and
  // nothing was added.
  static std::string Snapshot(Plane& p) {
    ControlPlane& cp = *p.cp;
    store::Store& s = *p.store;
    json views = {{"leases", cp.ListLeases(kOwner, 1000).body},
                  {"fleet", cp.Fleet().body},
                  {"keys", cp.ListKeys("", 1000).body},
                  {"policy", cp.GetPolicy().body}};
    json records = json::object();
    for (const store::TenantRecord& t : Value(s.Tenants())) {
      records["tenants"].push_back({t.id, t.name, t.created.ms});
      views["balances"][t.id] = cp.GetBalance(kOwner, t.id).body;
    }
    for (const store::KeyRecord& k : Value(s.Keys())) {
      records["keys"].push_back({k.id, k.tenant_id, k.hash, k.admin, k.revoked.ms});
    }
    for (const store::LeaseRecord& l : Value(s.Leases())) {
      records["leases"].push_back({l.id, Name(l.state), l.gpus, l.price_micros, l.placement, l.ended.ms});
      for (const store::LeaseEventRecord& e : Value(s.LeaseEvents(l.id, 0))) {
        records["events"].push_back({e.seq, e.lease_id, e.type, e.data});
      }
    }
    records["last_event_seq"] = Value(s.LastEventSeq());
    for (const store::LeasePriceRecord& lp : Value(s.LeasePrices())) {
      records["lease_prices"].push_back({lp.lease_id, lp.at.ms, lp.price_micros});
    }
    for (const store::InternalJobRecord& j : Value(s.InternalJobs())) {
      records["internal_jobs"].push_back({j.id, j.pool, j.gpus, j.start.ms, j.end.ms});
    }
    for (const store::BalanceRecord& b : Value(s.Balances())) {
      records["balances"].push_back({b.tenant_id, b.credited_micros, b.charged_micros});
    }
    for (const store::UsageRecord& u : Value(s.Usage("", ""))) {
      records["usage"].push_back({u.key, u.amount_micros});
    }
    return json{{"views", views}, {"records", records}}.dump(1);
  }

  std::string SavedPath() const { return dir_ + "/acknowledged.json"; }

  // In the child: saves what is acknowledged now for the parent to compare with.
  void SaveSnapshot(Plane& p) { std::ofstream(SavedPath()) << Snapshot(p); }

  std::string Saved() const {
    std::ifstream in(SavedPath());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // In the parent, after a crash: a fresh control plane on the file sees what was saved.
  void ExpectRestartRecoversTheSnapshot() {
    const std::string saved = Saved();
    ASSERT_FALSE(saved.empty()) << "the child saved nothing: it died before its doomed write";
    Plane p = Open();
    ASSERT_NE(p.cp, nullptr);
    EXPECT_EQ(Snapshot(p), saved);
  }

  // The child of a death test: acknowledges AcknowledgedWrites, saves the snapshot, arms
  // `fault` and makes `doomed`, which must not return. Returns (the reason on stderr) if any
  // step before the doomed write fails, which fails the death test.
  void AcknowledgeThenFail(const CommitFault& fault, const DoomedWrite& doomed);
  // The child of a death test: the control plane's first commit, which it makes as it opens,
  // fails.
  void FailOpening() {
    Plane p = Open(CommitFault{});
    std::fprintf(stderr, "the control plane opened: %d\n", p.cp != nullptr);
  }
  // The child of a death test: the first request after a restart that went well fails.
  void FailFirstRequest(const DoomedWrite& doomed) {
    Plane p = Open();
    if (p.cp == nullptr) return;
    p.faults->Inject({});
    Reply r = doomed.write(*p.cp, *p.store);
    std::fprintf(stderr, "%s was answered: %d %s\n", doomed.name, r.status, r.body.dump().c_str());
  }

  std::string dir_;
  ServeConfig config_;
  std::unique_ptr<sim::Trace> trace_;
  ManualClock wall_{Time{1'700'000'000'000}};
};

// Test names and failures show the write by its name.
void PrintTo(const DoomedWrite& w, std::ostream* os) { *os << w.name; }

// Every kind of write a request makes, each touching other tables.
const DoomedWrite kDoomedWrites[] = {
    {"CreateTenant",
     [](ControlPlane& cp, store::Store&) {
       return cp.CreateTenant({{"name", "doomed"}});
     }},
    {"CreateKey",
     [](ControlPlane& cp, store::Store& s) {
       return cp.CreateKey({{"tenant_id", TenantNamed(s, "a")}});
     }},
    {"RevokeKey", [](ControlPlane& cp, store::Store& s) { return cp.RevokeKey(KeyOf(s, "b")); }},
    {"CreateSpotLease",
     [](ControlPlane& cp, store::Store& s) {
       return cp.CreateLease({.tenant_id = TenantNamed(s, "b")},
                             {{"gpus", 4}, {"max_price_per_gpu_hour", 3}});
     }},
    {"ReleaseLease",
     [](ControlPlane& cp, store::Store& s) {
       return cp.ReleaseLease({.tenant_id = TenantNamed(s, "a")}, LeaseOf(s, "a"));
     }},
    {"Credit",
     [](ControlPlane& cp, store::Store& s) {
       return cp.Credit({{"tenant_id", TenantNamed(s, "b")}, {"amount", "5.00"}});
     }},
    {"PutPolicy",
     [](ControlPlane& cp, store::Store&) {
       return cp.PutPolicy({{"headroom_gpus", 4}});
     }},
    {"AddInternalJob",
     [](ControlPlane& cp, store::Store&) {
       return cp.AddInternalJob({{"gpus", 16}, {"duration_s", 600}});
     }},
};

void FailStopDeathTest::AcknowledgeThenFail(const CommitFault& fault, const DoomedWrite& doomed) {
  Plane p = Open();
  if (p.cp == nullptr || !AcknowledgedWrites(*p.cp)) return;
  SaveSnapshot(p);
  p.faults->Inject(fault);
  Reply r = doomed.write(*p.cp, *p.store);
  std::fprintf(stderr, "%s was answered: %d %s\n", doomed.name, r.status, r.body.dump().c_str());
}

class FailStopEveryWriteDeathTest : public FailStopDeathTest,
                                    public testing::WithParamInterface<DoomedWrite> {};

// A commit refused (nothing written): the restart has exactly what was acknowledged before.
TEST_P(FailStopEveryWriteDeathTest,
       AFailedCommitStopsTheProcessAndTheRestartHasExactlyTheAcknowledged) {
  EXPECT_EXIT(AcknowledgeThenFail({.kind = CommitFault::Kind::kCommit}, GetParam()),
              testing::KilledBySignal(SIGABRT), kFailStop);
  ExpectRestartRecoversTheSnapshot();
}

INSTANTIATE_TEST_SUITE_P(Writes, FailStopEveryWriteDeathTest, testing::ValuesIn(kDoomedWrites),
                         [](const testing::TestParamInfo<DoomedWrite>& info) {
                           return info.param.name;
                         });

const DoomedWrite kNewSpotLease = kDoomedWrites[3];

// A failed sync: the store wrote the lease, then said it did not. The process stops all the
// same; the restart finds the lease whole (its record, events and price) and hands out the
// next id after it, never the same one again.
TEST_F(FailStopDeathTest, AFailedSyncStopsTheProcessAndTheRestartKeepsTheWriteWhole) {
  ASSERT_STREQ(kNewSpotLease.name, "CreateSpotLease");
  EXPECT_EXIT(AcknowledgeThenFail({.kind = CommitFault::Kind::kSync}, kNewSpotLease),
              testing::KilledBySignal(SIGABRT), kFailStop);

  const json saved = json::parse(Saved());
  Plane p = Open();
  ASSERT_NE(p.cp, nullptr);
  const json now = json::parse(Snapshot(p));
  EXPECT_EQ(now["records"]["tenants"], saved["records"]["tenants"]);
  EXPECT_EQ(now["records"]["keys"], saved["records"]["keys"]);
  ASSERT_EQ(saved["records"]["leases"].size(), 2u);
  ASSERT_EQ(now["records"]["leases"].size(), 3u);
  std::string doomed;  // the lease the failed sync wrote
  for (const json& l : now["records"]["leases"]) {
    if (std::find(saved["records"]["leases"].begin(), saved["records"]["leases"].end(), l) ==
        saved["records"]["leases"].end()) {
      doomed = l[0];
      EXPECT_EQ(l[1], "active");
    }
  }
  ASSERT_NE(doomed, "") << "the acknowledged leases changed";
  auto events = p.store->LeaseEvents(doomed, 0);
  ASSERT_TRUE(events.ok());
  EXPECT_FALSE(events->empty()) << "the lease's events came with it";
  auto prices = p.store->LeasePrices();
  ASSERT_TRUE(prices.ok());
  EXPECT_TRUE(std::any_of(prices->begin(), prices->end(), [&](const store::LeasePriceRecord& lp) {
    return lp.lease_id == doomed;
  }));

  Reply next = kNewSpotLease.write(*p.cp, *p.store);
  ASSERT_EQ(next.status, 201) << next.body.dump();
  EXPECT_GT(next.body["id"].get<std::string>(), doomed) << "ids are never handed out twice";
}

// Crash after crash on the same file: a write refused, then the restart's own first commit
// (the control plane commits as it opens), then the first request after a clean restart. Each
// restart has the same acknowledged state, and the file still takes writes after all of them.
TEST_F(FailStopDeathTest, RepeatedCrashesIncludingTheFirstWriteAfterARestartLoseNothing) {
  const DoomedWrite new_tenant = kDoomedWrites[0];
  ASSERT_STREQ(new_tenant.name, "CreateTenant");
  EXPECT_EXIT(AcknowledgeThenFail({}, new_tenant), testing::KilledBySignal(SIGABRT), kFailStop);
  ExpectRestartRecoversTheSnapshot();

  EXPECT_EXIT(FailOpening(), testing::KilledBySignal(SIGABRT), kFailStop);
  ExpectRestartRecoversTheSnapshot();

  EXPECT_EXIT(FailFirstRequest(new_tenant), testing::KilledBySignal(SIGABRT), kFailStop);
  ExpectRestartRecoversTheSnapshot();

  Plane p = Open();
  ASSERT_NE(p.cp, nullptr);
  Reply t = p.cp->CreateTenant({{"name", "after"}});
  EXPECT_EQ(t.status, 201) << t.body.dump();
  EXPECT_EQ(TenantNamed(*p.store, "doomed"), "");
  EXPECT_NE(TenantNamed(*p.store, "after"), "");
}

// A failure the fault store injects is what reaches the check, not something else on the way:
// with no fault armed the same writes are all acknowledged.
TEST_F(FailStopDeathTest, WithoutAFaultTheSameWritesAreAcknowledged) {
  Plane p = Open();
  ASSERT_NE(p.cp, nullptr);
  ASSERT_TRUE(AcknowledgedWrites(*p.cp));
  for (const DoomedWrite& w : kDoomedWrites) {
    Reply r = w.write(*p.cp, *p.store);
    EXPECT_LT(r.status, 300) << w.name << ": " << r.body.dump();
  }
  EXPECT_EQ(p.faults->failed_commits(), 0);
  EXPECT_GE(p.faults->commits(), 1 + 7 + 8) << "the open, then every write committed";
}

}  // namespace
}  // namespace ll::api
