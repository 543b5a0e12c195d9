// Sim predicts serve, proven: one week of the owner's demand (Helios Earth) and one script of
// tenant requests, releases and floor changes, played through `landlord sim`'s engine and
// through the control plane on a manual clock, must give the same decisions event by event
// (placements, notices and their reclaim_at, prices) and the same bills.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

#include <fmt/format.h>

#include "api/control_plane.h"
#include "core/rng.h"
#include "ledger/ledger.h"
#include "sim/engine.h"
#include "sim/trace.h"
#include "step/decisions.h"
#include "store/store.h"

namespace ll {
namespace {

using sim::TenantAction;
using Kind = sim::TenantAction::Kind;

constexpr char kAdminKey[] = "sim-predicts-serve-admin-key";

sim::Trace Week() {
  sim::ReadOptions ro;
  auto trace = sim::ReadTrace(std::string("helios:") + LL_SOURCE_DIR + "/data/helios_earth_2020_05", ro);
  EXPECT_TRUE(trace.ok()) << trace.status().message();
  sim::Trace t = std::move(*trace);
  t.end = t.begin + Duration::Hours(24 * 7);
  std::erase_if(t.levels, [&](const sim::DemandLevel& l) { return l.t >= t.end; });
  std::erase_if(t.gaps, [&](const sim::Gap& g) { return g.begin >= t.end; });
  for (auto& g : t.gaps) g.end = std::min(g.end, t.end);
  return t;
}

// A tenant mix over the week: spot leases bidding around the list price, reserved terms,
// releases of earlier leases, the owner moving the floor; at the end every lease is released.
std::vector<TenantAction> Script(const sim::Trace& trace, const market::PriceBook& prices) {
  Rng rng(20200501);
  std::vector<TenantAction> out;
  const Gpus sizes[] = {1, 2, 4, 8, 8, 16, 32, 64};
  const Duration terms[] = {Duration::Hours(1), Duration::Hours(4), Duration::Hours(24)};
  uint64_t creates = 0;
  const Time stop = trace.end - Duration::Hours(2);
  for (Time t = trace.begin + Duration::Minutes(30) + Duration::Seconds(17); t < stop;
       t += Duration::Seconds(60 * (5 + static_cast<int64_t>(rng.Below(40))) + static_cast<int64_t>(rng.Below(50)))) {
    TenantAction a;
    a.at = t;
    const uint64_t r = rng.Below(100);
    if (r < 50) {
      a.kind = Kind::kSpot;
      a.gpus = sizes[rng.Below(std::size(sizes))];
      const int64_t lo = prices.Floor().micros, hi = 2 * prices.list_per_gpu_hour.micros;
      a.max_price = Money::Micros(lo + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(hi - lo))) / 10'000 * 10'000);
      ++creates;
    } else if (r < 65) {
      a.kind = Kind::kReserved;
      a.gpus = sizes[3 + rng.Below(4)];
      a.term = terms[rng.Below(std::size(terms))];
      ++creates;
    } else if (r < 95) {
      if (creates == 0) continue;
      a.kind = Kind::kRelease;
      a.lease = rng.Below(creates);
    } else {
      a.kind = Kind::kFloor;
      a.floor = Money::Micros(prices.Floor().micros + static_cast<int64_t>(rng.Below(8)) * 100'000);
    }
    out.push_back(a);
  }
  for (uint64_t n = 0; n < creates; ++n) {
    TenantAction a;
    a.at = stop + Duration::Seconds(static_cast<int64_t>(n) + 1);
    a.kind = Kind::kRelease;
    a.lease = n;
    out.push_back(a);
  }
  return out;
}

// What the ledger bills each lease for (by lease number).
std::map<uint64_t, int64_t> SimBills(const std::vector<sim::ScriptedLease>& leases) {
  std::map<uint64_t, int64_t> out;
  for (uint64_t n = 0; n < leases.size(); ++n) {
    const sim::ScriptedLease& l = leases[n];
    if (l.end <= l.start) continue;
    ledger::LeaseUsage u;
    u.lease_id = fmt::format("lease_{}", n + 1);
    u.kind = l.reserved ? "reserved" : "spot";
    u.gpus = l.gpus;
    u.start = l.start;
    u.end = l.end;
    for (const auto& [at, price] : l.prices) u.prices.push_back({at, price});
    u.prices = ledger::LastAtEachInstant(u.prices);  // as the control plane bills
    auto owed = ledger::AccruedUntil(u, l.end);
    EXPECT_TRUE(owed.ok()) << owed.status().message();
    if (owed.ok() && owed->micros > 0) out[n] = owed->micros;
  }
  return out;
}

// Plays `script` through the control plane: each request is the API call at its time, and
// the clock moves a minute at a time in between (the sim's tick) with Advance().
class Serve {
 public:
  Serve(const sim::Trace& trace, const api::ServeConfig& config) : trace_(trace) {
    dir_ = fmt::format("{}/landlord_sps_XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    EXPECT_NE(mkdtemp(dir_.data()), nullptr);
    auto s = store::OpenSqliteStore(dir_ + "/landlord.db");
    EXPECT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    auto cp = api::ControlPlane::Open(config, trace, store_.get(), &wall_, kAdminKey);
    EXPECT_TRUE(cp.ok()) << cp.status().message();
    cp_ = std::move(*cp);
    EXPECT_EQ(cp_->Now(), trace.begin);
    api::Reply t = cp_->CreateTenant({{"name", "tenant"}});
    EXPECT_EQ(t.status, 201) << t.body.dump();
    tenant_.tenant_id = t.body["id"].get<std::string>();
    cp_->SetDecisionLog(&log_);
  }
  ~Serve() {
    cp_.reset();
    store_.reset();
    EXPECT_EQ(std::system(fmt::format("rm -rf '{}'", dir_).c_str()), 0);
  }

  void Play(const std::vector<TenantAction>& script) {
    size_t next = 0;
    for (Time m = trace_.begin + Duration::Seconds(60); m < trace_.end; m += Duration::Seconds(60)) {
      for (; next < script.size() && script[next].at < m; ++next) Do(script, next);
      SetClock(m);
      cp_->Advance();
    }
    SetClock(trace_.end);
    cp_->Advance();
  }

  // Billed usage by lease number, from the usage records the control plane committed.
  std::map<uint64_t, int64_t> Bills() {
    std::map<uint64_t, int64_t> out;
    api::Principal owner{.admin = true, .tenant_id = ""};
    std::string after;
    do {
      api::Reply r = cp_->Usage(owner, MonthUtc(trace_.begin), tenant_.tenant_id, 1000, after);
      EXPECT_EQ(r.status, 200) << r.body.dump();
      for (const auto& u : r.body["data"]) {
        const std::string id = u["lease_id"].get<std::string>();
        out[std::stoull(id.substr(id.find('_') + 1)) - 1] += u["amount_micros"].get<int64_t>();
      }
      after = r.body["next"].is_string() ? r.body["next"].get<std::string>() : "";
    } while (!after.empty());
    return out;
  }
  const step::DecisionLog& log() const { return log_; }

 private:
  void SetClock(Time t) { wall_.Set(kWallOrigin + (t - trace_.begin)); }

  void Do(const std::vector<TenantAction>& script, size_t i) {
    const TenantAction& a = script[i];
    SetClock(a.at);
    api::Reply r;
    switch (a.kind) {
      case Kind::kSpot:
        r = cp_->CreateLease(tenant_, {{"kind", "spot"}, {"gpus", a.gpus}, {"max_price_per_gpu_hour", FormatMoney(a.max_price)}});
        break;
      case Kind::kReserved:
        r = cp_->CreateLease(tenant_, {{"kind", "reserved"}, {"gpus", a.gpus}, {"duration_s", a.term.ms / 1000}});
        break;
      case Kind::kRelease: {
        if (a.lease >= leases_.size()) return;
        api::Reply got = cp_->GetLease(tenant_, leases_[a.lease]);
        const std::string state = got.body.value("state", "");
        if (state == "active" || state == "noticed") r = cp_->ReleaseLease(tenant_, leases_[a.lease]);
        return;
      }
      case Kind::kFloor:
        r = cp_->PutPolicy({{"floor_per_gpu_hour", FormatMoney(a.floor)}});
        ASSERT_EQ(r.status, 200) << r.body.dump();
        return;
    }
    if (r.status == 201) {
      leases_.push_back(r.body["id"].get<std::string>());
    } else {
      ASSERT_EQ(r.status, 409) << r.body.dump();
      log_.Refused(a.at, i, r.body["error"]["code"].get<std::string>());
    }
  }

  static constexpr Time kWallOrigin{1'700'000'000'000};
  const sim::Trace& trace_;
  std::string dir_;
  ManualClock wall_{kWallOrigin};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<api::ControlPlane> cp_;
  api::Principal tenant_;
  std::vector<std::string> leases_;  // by lease number
  step::DecisionLog log_;
};

// The lines of `log` from after the first instant to before the end: the control plane takes
// its first step in Open(), before a log can be attached, and the simulator takes no step at
// the end of the trace.
std::vector<std::string> Between(const step::DecisionLog& log, Time begin, Time end) {
  std::vector<std::string> out;
  for (const std::string& line : log.lines()) {
    const int64_t t = std::stoll(line.substr(0, line.find(' ')));
    if (t > begin.ms && t < end.ms) out.push_back(line);
  }
  return out;
}

TEST(SimPredictsServe, OneWeekOfHeliosEarth) {
  const sim::Trace trace = Week();
  api::ServeConfig config;
  config.speed = 1;
  config.history = Duration{};
  config.tick = Duration::Seconds(60);
  config.reserved_min_history = Duration::Hours(24);
  config.gateway_enabled = false;

  sim::SimOptions options;
  options.notice = config.notice;
  options.tick = Duration::Seconds(60);
  options.prices = config.prices;
  options.cooldown = config.cooldown;
  options.delay_budget = config.delay_budget;
  options.warmup = config.warmup;
  options.reserved_min_history = config.reserved_min_history;
  options.script = Script(trace, config.prices);
  options.check_invariants = true;
  step::DecisionLog sim_log;
  options.decisions = &sim_log;
  auto simulated = sim::RunPolicy(trace, config.policy, options, nullptr);
  ASSERT_TRUE(simulated.ok()) << simulated.status().message();

  Serve serve(trace, config);
  serve.Play(options.script);

  const auto want = Between(sim_log, trace.begin, trace.end);
  const auto got = Between(serve.log(), trace.begin, trace.end);
  if (const char* dump = std::getenv("LL_DECISIONS_DIR"); dump != nullptr) {  // for a failure's diff
    std::ofstream sim_out(std::string(dump) + "/sim.log"), serve_out(std::string(dump) + "/serve.log");
    for (const auto& l : want) sim_out << l << "\n";
    for (const auto& l : got) serve_out << l << "\n";
  }
  size_t starts = 0, notices = 0, reprices = 0, refusals = 0;
  for (const std::string& line : want) {
    starts += line.find(" started ") != std::string::npos;
    notices += line.find(" noticed ") != std::string::npos;
    reprices += line.find(" repriced ") != std::string::npos;
    refusals += line.find(" refused ") != std::string::npos;
  }
  // The script exercises every kind of decision.
  EXPECT_GT(starts, 50u);
  EXPECT_GT(notices, 5u);
  EXPECT_GT(reprices, 5u);
  EXPECT_GT(refusals, 5u);
  for (size_t i = 0; i < std::max(want.size(), got.size()); ++i) {
    const std::string w = i < want.size() ? want[i] : "(none)";
    const std::string g = i < got.size() ? got[i] : "(none)";
    ASSERT_EQ(w, g) << "decision " << i << " of " << want.size() << " (sim) / " << got.size() << " (serve); before it: "
                    << (i > 0 ? want[i - 1] : "(none)");
  }
  const auto sim_bills = SimBills(simulated->scripted);
  const auto serve_bills = serve.Bills();
  EXPECT_GT(sim_bills.size(), 50u);
  EXPECT_EQ(sim_bills, serve_bills);
}

}  // namespace
}  // namespace ll
