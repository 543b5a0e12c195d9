// Data-driven allocator and spot-auction cases (DuckDB sqllogictest style): each file under
// tests/alloc/golden/ is a small scenario, events in and expected decisions out. The runner
// checks the allocator's own rules (CheckInvariants) after every event, reports a wrong
// expectation as `file:line: ...` and keeps going, and stops at the first malformed line with
// `file:line: ...` (it never crashes on bad input).
//
// Format: one directive per line; blank lines and everything after `#` are ignored. Times T
// are whole seconds since 2020-05-04T00:00:00Z (a Monday). Prices are dollars ("0.30").
//
//   fleet pool=NAME nodes=N gpus=G rack=R   N nodes of G GPUs in rack R, in pool NAME (pools
//                                           are created in order of first mention)
//   options [notice=S] [drain=S] [occupancy=true|false] [floor=P] [policy=NAME]
//                                           defaults: 120, 30, true, 0.10, spot-all; `landlord`
//                                           gets a forecast fed after every event; `oracle` is
//                                           not available here
//   at T ACTION                             advance the allocator to T (never backwards), then:
//     advance                                 nothing more
//     demand POOL LEVEL                       occupancy mode: the owner wants LEVEL GPUs
//     job POOL GPUS [prio=P] -> RESULT        job mode: submit a job
//     finish NAME                             job mode: the job ends
//     spot POOL GPUS price=P [max=P] -> RESULT   (max defaults to price)
//     inference POOL GPUS price=P -> RESULT
//     reserved POOL GPUS until=T price=P -> RESULT
//     release NAME                            the tenant gives the GPUs back
//     notice NAME                             the price rose above the tenant's max
//     setprice NAME P                         a new clearing price for a spot lease
//     cheapest POOL GPUS                      notice the cheapest spot for GPUS GPUs
//     rebalance
//   RESULT is `ok NAME` (NAME then names the holder) or `error CODE [TEXT...]` (CODE as in
//   StatusCodeName, e.g. resource_exhausted; the message must contain TEXT).
//
//   expect pool POOL KEY=N...               KEY: capacity internal want reserved spot inference
//                                           noticed free sellable
//   expect notice NAME reclaim_at=T [reason=internal_demand|policy_limit|price_above_max]
//   expect active|noticed|queued NAME      the holder's state now
//   expect started NAME [at=T]
//   expect ended NAME finished|reclaimed|rejected [at=T]
//   expect holder NAME [gpus=N] [nodes=N] [racks=N] [price=P]
//   expect misses N                         forecast misses so far
//   expect waiting N                        owner GPUs waiting (Allocator::InternalWaiting)
//
//   auction supply=N floor=P                a uniform-price auction (market::ClearSpot):
//   bid KEY gpus=N max=P                      its bids
//   clear -> price=P winners=K,K losers=K   the outcome (`-` for an empty list); the runner
//                                           also checks that the price is never below the
//                                           floor and that no winner pays above its max
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "alloc/allocator.h"
#include "alloc/fleet.h"
#include "alloc/policy.h"
#include "core/money.h"
#include "core/status.h"
#include "core/time.h"
#include "forecast/forecast.h"
#include "market/auction.h"

namespace ll::alloc {
namespace {

constexpr int64_t kEpochMs = 1'588'550'400'000;  // 2020-05-04T00:00:00Z

class GoldenRunner final : public Listener {
 public:
  explicit GoldenRunner(std::string file) : file_(std::move(file)) {}

  // Runs a whole file's text. A malformed line stops the run with `file:line: ...`; a wrong
  // expectation is recorded in failures() and the run goes on.
  Status Run(std::string_view text) {
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      ++line_no_;
      LL_RETURN_IF_ERROR(Line(text.substr(pos, end - pos)));
      pos = end + 1;
    }
    if (auction_) return Err("`auction` block without `clear`");
    return Status::Ok();
  }

  const std::vector<std::string>& failures() const { return failures_; }
  int checks() const { return checks_; }

  void OnStart(const Holder& h, Time t) override { started_[h.id.v] = t; }
  void OnNotice(const Holder& h, Time t, NoticeReason r) override {
    notices_[h.id.v] = {t, h.reclaim_at, r};
  }
  void OnEnd(const Holder& h, Time t, EndReason r) override { ends_[h.id.v] = {t, r}; }

 private:
  struct NoticeSeen {
    Time at, reclaim_at;
    NoticeReason reason;
  };
  struct EndSeen {
    Time at;
    EndReason reason;
  };
  struct Args {
    std::vector<std::string_view> pos;                // positional tokens
    std::map<std::string_view, std::string_view> kv;  // key=value tokens
    std::vector<std::string_view> result;             // tokens after `->`
    bool has_arrow = false;
  };

  // ---- errors

  Status Err(std::string_view msg) const {
    return Status::Invalid(fmt::format("{}:{}: {}", file_, line_no_, msg));
  }
  void Mismatch(std::string_view msg) {
    failures_.push_back(fmt::format("{}:{}: {}", file_, line_no_, msg));
  }
  template <typename T>
  void Check(std::string_view what, const T& got, const T& want) {
    ++checks_;
    if (!(got == want)) Mismatch(fmt::format("{}: expected {}, got {}", what, want, got));
  }

  // ---- parsing helpers

  static std::vector<std::string_view> Tokens(std::string_view s) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
      size_t j = i;
      while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\r') ++j;
      if (j > i) out.push_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }

  Result<Args> Split(const std::vector<std::string_view>& toks, size_t from) const {
    Args a;
    for (size_t i = from; i < toks.size(); ++i) {
      if (toks[i] == "->") {
        if (a.has_arrow) return Err("two `->`");
        a.has_arrow = true;
        continue;
      }
      if (a.has_arrow) {
        a.result.push_back(toks[i]);
        continue;
      }
      size_t eq = toks[i].find('=');
      if (eq == std::string_view::npos) {
        a.pos.push_back(toks[i]);
      } else {
        std::string_view k = toks[i].substr(0, eq), v = toks[i].substr(eq + 1);
        if (k.empty() || v.empty()) return Err(fmt::format("bad `key=value` `{}`", toks[i]));
        if (a.kv.contains(k)) return Err(fmt::format("`{}` given twice", k));
        a.kv[k] = v;
      }
    }
    return a;
  }

  Status Only(const Args& a, std::initializer_list<std::string_view> keys,
              size_t positional) const {
    for (auto& [k, v] : a.kv) {
      if (std::find(keys.begin(), keys.end(), k) == keys.end())
        return Err(fmt::format("unknown key `{}`", k));
    }
    if (a.pos.size() != positional) {
      return Err(
          fmt::format("expected {} positional argument(s), got {}", positional, a.pos.size()));
    }
    return Status::Ok();
  }

  Result<int64_t> Int(std::string_view s, std::string_view what) const {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
      return Err(fmt::format("`{}`: expected an integer, got `{}`", what, s));
    }
    return v;
  }

  Result<Gpus> Count(std::string_view s, std::string_view what) const {
    LL_ASSIGN_OR_RETURN(int64_t v, Int(s, what));
    if (v < 0 || v > 1'000'000) return Err(fmt::format("`{}`: {} is out of range", what, v));
    return static_cast<Gpus>(v);
  }

  Result<Money> Price(std::string_view s, std::string_view what) const {
    Result<Money> m = ParseMoney(s);
    if (!m.ok()) return Err(fmt::format("`{}`: {}", what, m.status().message()));
    return *m;
  }

  Result<Time> At(std::string_view s, std::string_view what) const {
    LL_ASSIGN_OR_RETURN(int64_t v, Int(s, what));
    if (v < 0 || v > int64_t{10} * 365 * 86400)
      return Err(fmt::format("`{}`: {} is out of range", what, v));
    return Time{kEpochMs + v * 1000};
  }

  static std::string Secs(Time t) {
    if (t == kTimeMax) return "never";
    return std::to_string((t.ms - kEpochMs) / 1000) + ((t.ms - kEpochMs) % 1000 ? "+ms" : "");
  }

  Result<PoolId> Pool(std::string_view s) const {
    auto it = pool_ids_.find(std::string(s));
    if (it == pool_ids_.end()) return Err(fmt::format("unknown pool `{}`", s));
    return PoolId{it->second};
  }

  Result<HolderId> Label(std::string_view s) const {
    auto it = labels_.find(std::string(s));
    if (it == labels_.end()) return Err(fmt::format("unknown holder `{}`", s));
    return it->second;
  }

  Result<std::string_view> Req(const Args& a, std::string_view key) const {
    auto it = a.kv.find(key);
    if (it == a.kv.end()) return Err(fmt::format("missing `{}=`", key));
    return it->second;
  }

  Result<std::vector<uint64_t>> Keys(std::string_view s) const {
    std::vector<uint64_t> out;
    if (s == "-") return out;
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = s.find(',', i);
      if (j == std::string_view::npos) j = s.size();
      LL_ASSIGN_OR_RETURN(int64_t k, Int(s.substr(i, j - i), "key"));
      if (k < 0) return Err("negative bid key");
      out.push_back(static_cast<uint64_t>(k));
      i = j + 1;
    }
    return out;
  }

  // ---- directives

  Status Line(std::string_view raw) {
    std::string_view line = raw.substr(0, raw.find('#'));
    std::vector<std::string_view> t = Tokens(line);
    if (t.empty()) return Status::Ok();
    if (t[0] == "fleet") return DoFleet(t);
    if (t[0] == "options") return DoOptions(t);
    if (t[0] == "at") return DoAt(t);
    if (t[0] == "expect") return DoExpect(t);
    if (t[0] == "auction" || t[0] == "bid" || t[0] == "clear") return DoAuction(t);
    return Err(fmt::format("unknown directive `{}`", t[0]));
  }

  Status DoFleet(const std::vector<std::string_view>& t) {
    if (alloc_) return Err("`fleet` after the first `at`");
    LL_ASSIGN_OR_RETURN(Args a, Split(t, 1));
    LL_RETURN_IF_ERROR(Only(a, {"pool", "nodes", "gpus", "rack"}, 0));
    if (a.has_arrow) return Err("`->` after `fleet`");
    LL_ASSIGN_OR_RETURN(std::string_view pool, Req(a, "pool"));
    LL_ASSIGN_OR_RETURN(std::string_view nodes_s, Req(a, "nodes"));
    LL_ASSIGN_OR_RETURN(std::string_view gpus_s, Req(a, "gpus"));
    LL_ASSIGN_OR_RETURN(std::string_view rack_s, Req(a, "rack"));
    LL_ASSIGN_OR_RETURN(Gpus nodes, Count(nodes_s, "nodes"));
    LL_ASSIGN_OR_RETURN(Gpus gpus, Count(gpus_s, "gpus"));
    LL_ASSIGN_OR_RETURN(Gpus rack, Count(rack_s, "rack"));
    if (nodes < 1 || nodes > 1000) return Err("`nodes` must be 1..1000");
    auto [it, fresh] =
        pool_ids_.emplace(std::string(pool), static_cast<uint32_t>(spec_.pools.size()));
    if (fresh) spec_.pools.emplace_back(pool);
    for (Gpus i = 0; i < nodes; ++i) {
      spec_.nodes.push_back({fmt::format("{}-{}", pool, spec_.nodes.size()), PoolId{it->second},
                             RackId{static_cast<uint32_t>(rack)}, gpus});
    }
    return Status::Ok();
  }

  Status DoOptions(const std::vector<std::string_view>& t) {
    if (alloc_) return Err("`options` after the first `at`");
    LL_ASSIGN_OR_RETURN(Args a, Split(t, 1));
    LL_RETURN_IF_ERROR(Only(a, {"notice", "drain", "occupancy", "floor", "policy"}, 0));
    if (a.has_arrow) return Err("`->` after `options`");
    for (auto& [k, v] : a.kv) {
      if (k == "notice" || k == "drain") {
        LL_ASSIGN_OR_RETURN(int64_t s, Int(v, k));
        if (s < 1 || s > 86400) return Err(fmt::format("`{}` must be 1..86400 seconds", k));
        (k == "notice" ? opt_.notice : opt_.inference_drain) = Duration::Seconds(s);
      } else if (k == "occupancy") {
        if (v != "true" && v != "false") return Err("`occupancy` must be true or false");
        opt_.occupancy = v == "true";
      } else if (k == "floor") {
        LL_ASSIGN_OR_RETURN(opt_.floor, Price(v, k));
      } else {
        policy_ = std::string(v);
      }
    }
    return Status::Ok();
  }

  Status Start() {
    if (spec_.nodes.empty()) return Err("no `fleet` line before the first `at`");
    Result<alloc::Fleet> f = alloc::Fleet::Create(spec_);
    if (!f.ok()) return Err(f.status().message());
    std::vector<Gpus> caps;
    for (size_t p = 0; p < spec_.pools.size(); ++p)
      caps.push_back(f->pool_gpus(PoolId{static_cast<uint32_t>(p)}));
    forecast_ = std::make_unique<forecast::DemandForecast>(caps);
    PolicyContext ctx;
    ctx.notice = opt_.notice;
    ctx.forecast = forecast_.get();
    ctx.pools = static_cast<int>(caps.size());
    Result<std::unique_ptr<Policy>> policy = MakePolicy(policy_, ctx);
    if (!policy.ok()) return Err(policy.status().message());
    alloc_ = std::make_unique<Allocator>(spec_, opt_, std::move(*policy), this);
    now_ = Time{kEpochMs};
    return Status::Ok();
  }

  Status Bind(const Args& a, const Result<HolderId>& r, std::string_view what) {
    if (!a.has_arrow || a.result.empty())
      return Err(fmt::format("`{}` needs `-> ok NAME` or `-> error CODE`", what));
    ++checks_;
    if (a.result[0] == "ok") {
      if (a.result.size() != 2) return Err("`-> ok` takes one NAME");
      std::string name(a.result[1]);
      if (labels_.contains(name)) return Err(fmt::format("holder `{}` named twice", name));
      if (!r.ok()) {
        Mismatch(fmt::format("{}: expected ok, got {}", what, r.status().ToString()));
        return Err(fmt::format("cannot go on without holder `{}`", name));
      }
      labels_[name] = *r;
      return Status::Ok();
    }
    if (a.result[0] != "error" || a.result.size() < 2)
      return Err("expected `-> ok NAME` or `-> error CODE [TEXT]`");
    std::string text;
    for (size_t i = 2; i < a.result.size(); ++i)
      text += (i > 2 ? " " : "") + std::string(a.result[i]);
    if (r.ok()) {
      Mismatch(fmt::format("{}: expected error {}, got ok", what, a.result[1]));
    } else if (StatusCodeName(r.status().code()) != a.result[1]) {
      Mismatch(
          fmt::format("{}: expected error {}, got {}", what, a.result[1], r.status().ToString()));
    } else if (r.status().message().find(text) == std::string::npos) {
      Mismatch(fmt::format("{}: expected a message with `{}`, got `{}`", what, text,
                           r.status().message()));
    }
    return Status::Ok();
  }

  Status DoAt(const std::vector<std::string_view>& t) {
    if (t.size() < 3) return Err("expected `at T ACTION ...`");
    LL_ASSIGN_OR_RETURN(Time when, At(t[1], "T"));
    if (!alloc_) LL_RETURN_IF_ERROR(Start());
    if (when < now_)
      return Err(fmt::format("time goes backwards: {} after {}", Secs(when), Secs(now_)));
    now_ = when;
    alloc_->AdvanceTo(now_);
    LL_ASSIGN_OR_RETURN(Args a, Split(t, 3));
    const std::string_view act = t[2];
    const bool with_result =
        act == "job" || act == "spot" || act == "inference" || act == "reserved";
    if (!with_result && a.has_arrow) return Err(fmt::format("`{}` takes no `->`", act));
    if (act == "advance" || act == "rebalance") {
      LL_RETURN_IF_ERROR(Only(a, {}, 0));
      if (act == "rebalance") alloc_->Rebalance(now_);
    } else if (act == "demand") {
      LL_RETURN_IF_ERROR(Only(a, {}, 2));
      if (!opt_.occupancy) return Err("`demand` needs occupancy=true (use `job`)");
      LL_ASSIGN_OR_RETURN(PoolId pool, Pool(a.pos[0]));
      LL_ASSIGN_OR_RETURN(Gpus level, Count(a.pos[1], "LEVEL"));
      alloc_->SetInternalDemand(pool, level, now_);
    } else if (act == "job") {
      LL_RETURN_IF_ERROR(Only(a, {"prio"}, 2));
      if (opt_.occupancy) return Err("`job` needs occupancy=false (use `demand`)");
      LL_ASSIGN_OR_RETURN(PoolId pool, Pool(a.pos[0]));
      LL_ASSIGN_OR_RETURN(Gpus gpus, Count(a.pos[1], "GPUS"));
      int64_t prio = 0;
      if (a.kv.contains("prio")) {
        LL_ASSIGN_OR_RETURN(prio, Int(a.kv["prio"], "prio"));
      }
      LL_RETURN_IF_ERROR(
          Bind(a, alloc_->SubmitJob(pool, gpus, static_cast<int>(prio), 0, now_), act));
    } else if (act == "finish") {
      LL_RETURN_IF_ERROR(Only(a, {}, 1));
      LL_ASSIGN_OR_RETURN(HolderId h, Label(a.pos[0]));
      const Holder& j = alloc_->holder(h);
      if (j.cls != HolderClass::kInternal || j.state == HolderState::kEnded) {
        return Err(fmt::format("`{}` is not a live job", a.pos[0]));
      }
      alloc_->FinishJob(h, now_);
    } else if (act == "spot" || act == "inference") {
      const bool spot = act == "spot";
      LL_RETURN_IF_ERROR(spot ? Only(a, {"price", "max"}, 2) : Only(a, {"price"}, 2));
      LL_ASSIGN_OR_RETURN(PoolId pool, Pool(a.pos[0]));
      LL_ASSIGN_OR_RETURN(Gpus gpus, Count(a.pos[1], "GPUS"));
      LL_ASSIGN_OR_RETURN(std::string_view ps, Req(a, "price"));
      LL_ASSIGN_OR_RETURN(Money price, Price(ps, "price"));
      Money max = price;
      if (a.kv.contains("max")) {
        LL_ASSIGN_OR_RETURN(max, Price(a.kv["max"], "max"));
      }
      LL_RETURN_IF_ERROR(
          Bind(a,
               alloc_->PlaceOutside(spot ? HolderClass::kSpot : HolderClass::kInference, pool, gpus,
                                    price, max, 0, now_),
               act));
    } else if (act == "reserved") {
      LL_RETURN_IF_ERROR(Only(a, {"until", "price"}, 2));
      LL_ASSIGN_OR_RETURN(PoolId pool, Pool(a.pos[0]));
      LL_ASSIGN_OR_RETURN(Gpus gpus, Count(a.pos[1], "GPUS"));
      LL_ASSIGN_OR_RETURN(std::string_view us, Req(a, "until"));
      LL_ASSIGN_OR_RETURN(Time until, At(us, "until"));
      LL_ASSIGN_OR_RETURN(std::string_view ps, Req(a, "price"));
      LL_ASSIGN_OR_RETURN(Money price, Price(ps, "price"));
      LL_RETURN_IF_ERROR(Bind(a, alloc_->PlaceReserved(pool, gpus, until, price, 0, now_), act));
    } else if (act == "release" || act == "notice") {
      LL_RETURN_IF_ERROR(Only(a, {}, 1));
      LL_ASSIGN_OR_RETURN(HolderId h, Label(a.pos[0]));
      const Holder& o = alloc_->holder(h);
      if (o.state == HolderState::kEnded) return Err(fmt::format("`{}` has ended", a.pos[0]));
      if (act == "release") {
        if (!o.outside()) return Err(fmt::format("`{}` is not a tenant's", a.pos[0]));
        alloc_->Release(h, now_);
      } else {
        if (o.cls != HolderClass::kSpot && o.cls != HolderClass::kInference) {
          return Err(fmt::format("`{}` is not spot or inference: it cannot be noticed", a.pos[0]));
        }
        alloc_->Notice(h, NoticeReason::kPriceAboveMax, now_);
      }
    } else if (act == "setprice") {
      LL_RETURN_IF_ERROR(Only(a, {}, 2));
      LL_ASSIGN_OR_RETURN(HolderId h, Label(a.pos[0]));
      LL_ASSIGN_OR_RETURN(Money p, Price(a.pos[1], "price"));
      if (alloc_->holder(h).cls != HolderClass::kSpot)
        return Err(fmt::format("`{}` is not spot", a.pos[0]));
      if (p < opt_.floor) return Err("`setprice` below the floor");
      alloc_->SetPrice(h, p);
    } else if (act == "cheapest") {
      LL_RETURN_IF_ERROR(Only(a, {}, 2));
      LL_ASSIGN_OR_RETURN(PoolId pool, Pool(a.pos[0]));
      LL_ASSIGN_OR_RETURN(Gpus gpus, Count(a.pos[1], "GPUS"));
      alloc_->NoticeCheapestSpot(pool, gpus, now_);
    } else {
      return Err(fmt::format("unknown action `{}`", act));
    }
    // What a driver does after every event: the forecast learns the owner's demand.
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      forecast_->Observe(p, alloc_->pool(PoolId{static_cast<uint32_t>(p)}).internal_want, now_);
    }
    alloc_->CheckInvariants(now_);  // aborts on a broken rule
    return Status::Ok();
  }

  Status DoExpect(const std::vector<std::string_view>& t) {
    if (t.size() < 2) return Err("expected `expect WHAT ...`");
    if (!alloc_) LL_RETURN_IF_ERROR(Start());
    LL_ASSIGN_OR_RETURN(Args a, Split(t, 2));
    if (a.has_arrow) return Err("`expect` takes no `->`");
    const std::string_view what = t[1];
    if (what == "pool") {
      if (a.pos.size() != 1) return Err("expected `expect pool POOL KEY=N...`");
      if (a.kv.empty()) return Err("`expect pool` needs at least one KEY=N");
      LL_ASSIGN_OR_RETURN(PoolId pool, Pool(a.pos[0]));
      const PoolCounters& pc = alloc_->pool(pool);
      for (auto& [k, v] : a.kv) {
        LL_ASSIGN_OR_RETURN(Gpus want, Count(v, k));
        std::optional<Gpus> got;
        if (k == "capacity") got = pc.capacity;
        if (k == "internal") got = pc.internal_held;
        if (k == "want") got = pc.internal_want;
        if (k == "reserved") got = pc.reserved;
        if (k == "spot") got = pc.spot;
        if (k == "inference") got = pc.inference;
        if (k == "noticed") got = pc.noticed;
        if (k == "free") got = pc.free;
        if (k == "sellable") got = alloc_->Sellable(pool, now_);
        if (!got) return Err(fmt::format("unknown pool counter `{}`", k));
        Check(fmt::format("pool {} {}", a.pos[0], k), *got, want);
      }
      return Status::Ok();
    }
    if (what == "misses" || what == "waiting") {
      LL_RETURN_IF_ERROR(Only(a, {}, 1));
      LL_ASSIGN_OR_RETURN(int64_t n, Int(a.pos[0], what));
      int64_t got = what == "misses" ? alloc_->forecast_misses() : alloc_->InternalWaiting();
      Check(std::string(what), got, n);
      return Status::Ok();
    }
    if (a.pos.empty()) return Err(fmt::format("`expect {}` needs a holder NAME", what));
    LL_ASSIGN_OR_RETURN(HolderId id, Label(a.pos[0]));
    const Holder& h = alloc_->holder(id);
    const std::string name(a.pos[0]);
    if (what == "active" || what == "noticed" || what == "queued") {
      LL_RETURN_IF_ERROR(Only(a, {}, 1));
      Check(name + " state", std::string(HolderStateName(h.state)), std::string(what));
    } else if (what == "notice") {
      LL_RETURN_IF_ERROR(Only(a, {"reclaim_at", "reason"}, 1));
      LL_ASSIGN_OR_RETURN(std::string_view rs, Req(a, "reclaim_at"));
      LL_ASSIGN_OR_RETURN(Time at, At(rs, "reclaim_at"));
      auto n = notices_.find(id.v);
      ++checks_;
      if (n == notices_.end()) {
        Mismatch(fmt::format("{} was never noticed (state {})", name, HolderStateName(h.state)));
        return Status::Ok();
      }
      Check(name + " reclaim_at", Secs(n->second.reclaim_at), Secs(at));
      if (a.kv.contains("reason")) {
        Check(name + " notice reason", std::string(NoticeReasonName(n->second.reason)),
              std::string(a.kv["reason"]));
      }
    } else if (what == "started") {
      LL_RETURN_IF_ERROR(Only(a, {"at"}, 1));
      auto s = started_.find(id.v);
      ++checks_;
      if (s == started_.end()) {
        Mismatch(fmt::format("{} never started (state {})", name, HolderStateName(h.state)));
        return Status::Ok();
      }
      if (a.kv.contains("at")) {
        LL_ASSIGN_OR_RETURN(Time at, At(a.kv["at"], "at"));
        Check(name + " start", Secs(s->second), Secs(at));
      }
    } else if (what == "ended") {
      LL_RETURN_IF_ERROR(Only(a, {"at"}, 2));
      const std::string_view reason = a.pos[1];
      if (reason != "finished" && reason != "reclaimed" && reason != "rejected") {
        return Err(fmt::format("unknown end reason `{}`", reason));
      }
      auto e = ends_.find(id.v);
      ++checks_;
      if (e == ends_.end()) {
        Mismatch(fmt::format("{} has not ended (state {})", name, HolderStateName(h.state)));
        return Status::Ok();
      }
      const char* got = e->second.reason == EndReason::kFinished    ? "finished"
                        : e->second.reason == EndReason::kReclaimed ? "reclaimed"
                                                                    : "rejected";
      Check(name + " end reason", std::string(got), std::string(reason));
      if (a.kv.contains("at")) {
        LL_ASSIGN_OR_RETURN(Time at, At(a.kv["at"], "at"));
        Check(name + " end", Secs(e->second.at), Secs(at));
      }
    } else if (what == "holder") {
      LL_RETURN_IF_ERROR(Only(a, {"gpus", "nodes", "racks", "price"}, 1));
      if (a.kv.empty()) return Err("`expect holder` needs at least one KEY=N");
      if (a.kv.contains("gpus")) {
        LL_ASSIGN_OR_RETURN(Gpus g, Count(a.kv["gpus"], "gpus"));
        Check(name + " gpus", h.gpus, g);
      }
      if (a.kv.contains("nodes")) {
        LL_ASSIGN_OR_RETURN(Gpus n, Count(a.kv["nodes"], "nodes"));
        Check(name + " nodes", static_cast<Gpus>(h.shares.size()), n);
      }
      if (a.kv.contains("racks")) {
        LL_ASSIGN_OR_RETURN(Gpus n, Count(a.kv["racks"], "racks"));
        std::set<uint32_t> racks;
        for (const Share& s : h.shares) racks.insert(alloc_->fleet().node(s.node).rack.v);
        Check(name + " racks", static_cast<Gpus>(racks.size()), n);
      }
      if (a.kv.contains("price")) {
        LL_ASSIGN_OR_RETURN(Money p, Price(a.kv["price"], "price"));
        Check(name + " price", FormatMoney(h.price), FormatMoney(p));
      }
    } else {
      return Err(fmt::format("unknown expectation `{}`", what));
    }
    return Status::Ok();
  }

  Status DoAuction(const std::vector<std::string_view>& t) {
    LL_ASSIGN_OR_RETURN(Args a, Split(t, 1));
    if (t[0] == "auction") {
      if (auction_) return Err("`auction` inside an open auction (missing `clear`)");
      if (a.has_arrow) return Err("`auction` takes no `->`");
      LL_RETURN_IF_ERROR(Only(a, {"supply", "floor"}, 0));
      LL_ASSIGN_OR_RETURN(std::string_view ss, Req(a, "supply"));
      LL_ASSIGN_OR_RETURN(std::string_view fs, Req(a, "floor"));
      auction_.emplace();
      LL_ASSIGN_OR_RETURN(auction_->supply, Count(ss, "supply"));
      LL_ASSIGN_OR_RETURN(auction_->floor, Price(fs, "floor"));
      return Status::Ok();
    }
    if (!auction_) return Err(fmt::format("`{}` outside an `auction` block", t[0]));
    if (t[0] == "bid") {
      if (a.has_arrow) return Err("`bid` takes no `->`");
      LL_RETURN_IF_ERROR(Only(a, {"gpus", "max"}, 1));
      market::Bid b;
      LL_ASSIGN_OR_RETURN(int64_t key, Int(a.pos[0], "KEY"));
      if (key < 0) return Err("negative bid key");
      b.key = static_cast<uint64_t>(key);
      for (const market::Bid& o : auction_->bids) {
        if (o.key == b.key) return Err(fmt::format("bid key {} given twice", key));
      }
      LL_ASSIGN_OR_RETURN(std::string_view gs, Req(a, "gpus"));
      LL_ASSIGN_OR_RETURN(b.gpus, Count(gs, "gpus"));
      if (b.gpus < 1) return Err("a bid needs gpus ≥ 1");
      LL_ASSIGN_OR_RETURN(std::string_view ms, Req(a, "max"));
      LL_ASSIGN_OR_RETURN(b.max_price, Price(ms, "max"));
      auction_->bids.push_back(b);
      return Status::Ok();
    }
    // clear -> price=P winners=... losers=...
    if (!a.has_arrow || !a.pos.empty() || !a.kv.empty())
      return Err("expected `clear -> price=P winners=K,.. losers=K,..`");
    LL_ASSIGN_OR_RETURN(Args want, Split(a.result, 0));
    LL_RETURN_IF_ERROR(Only(want, {"price", "winners", "losers"}, 0));
    const market::Clearing c = market::ClearSpot(auction_->bids, auction_->supply, auction_->floor);
    if (want.kv.contains("price")) {
      LL_ASSIGN_OR_RETURN(Money p, Price(want.kv["price"], "price"));
      Check("clearing price", FormatMoney(c.price), FormatMoney(p));
    }
    auto list = [](const std::vector<uint64_t>& v) {
      return v.empty() ? std::string("-") : fmt::format("{}", fmt::join(v, ","));
    };
    if (want.kv.contains("winners")) {
      LL_ASSIGN_OR_RETURN(std::vector<uint64_t> w, Keys(want.kv["winners"]));
      Check("winners", list(c.winners), list(w));
    }
    if (want.kv.contains("losers")) {
      LL_ASSIGN_OR_RETURN(std::vector<uint64_t> l, Keys(want.kv["losers"]));
      Check("losers", list(c.losers), list(l));
    }
    // Rules that hold for every auction.
    ++checks_;
    if (c.price < auction_->floor) Mismatch("clearing price below the floor");
    Gpus sold = 0;
    std::multiset<uint64_t> all(c.winners.begin(), c.winners.end());
    all.insert(c.losers.begin(), c.losers.end());
    std::multiset<uint64_t> bid_keys;
    for (const market::Bid& b : auction_->bids) {
      bid_keys.insert(b.key);
      if (std::find(c.winners.begin(), c.winners.end(), b.key) != c.winners.end()) {
        sold += b.gpus;
        if (b.max_price < c.price) Mismatch(fmt::format("winner {} pays above its max", b.key));
        if (b.max_price < auction_->floor)
          Mismatch(fmt::format("winner {} bid below the floor", b.key));
      }
    }
    if (sold > auction_->supply) Mismatch("winners take more than the supply");
    if (all != bid_keys) Mismatch("every bid must be exactly a winner or a loser");
    auction_.reset();
    return Status::Ok();
  }

  struct AuctionBlock {
    Gpus supply = 0;
    Money floor;
    std::vector<market::Bid> bids;
  };

  std::string file_;
  int line_no_ = 0;
  FleetSpec spec_;
  std::unordered_map<std::string, uint32_t> pool_ids_;
  AllocatorOptions opt_ = [] {
    AllocatorOptions o;
    o.floor = Money::Micros(100'000);
    return o;
  }();
  std::string policy_ = "spot-all";
  std::unique_ptr<forecast::DemandForecast> forecast_;
  std::unique_ptr<Allocator> alloc_;
  Time now_{kEpochMs};
  std::unordered_map<std::string, HolderId> labels_;
  std::unordered_map<uint32_t, Time> started_;
  std::unordered_map<uint32_t, NoticeSeen> notices_;
  std::unordered_map<uint32_t, EndSeen> ends_;
  std::optional<AuctionBlock> auction_;
  std::vector<std::string> failures_;
  int checks_ = 0;
};

// ---------------------------------------------------------------- the files

std::filesystem::path GoldenDir() {
  return std::filesystem::path(LL_SOURCE_DIR) / "tests/alloc/golden";
}

std::vector<std::string> GoldenFiles() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(GoldenDir(), ec)) {
    if (e.path().extension() == ".txt") out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class AllocGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(AllocGolden, File) {
  const std::filesystem::path path = GoldenDir() / GetParam();
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  GoldenRunner runner("tests/alloc/golden/" + GetParam());
  Status st = runner.Run(ss.str());
  EXPECT_TRUE(st.ok()) << st.message();
  for (const std::string& f : runner.failures()) ADD_FAILURE() << f;
  EXPECT_GT(runner.checks(), 0) << "a golden file without a single expectation";
}

INSTANTIATE_TEST_SUITE_P(Files, AllocGolden, ::testing::ValuesIn(GoldenFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param.substr(0, info.param.rfind('.'));
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

TEST(AllocGoldenRunner, FindsTheFiles) { EXPECT_GE(GoldenFiles().size(), 6u) << GoldenDir(); }

// A wrong expectation is reported with file:line, and the run goes on to the end.
TEST(AllocGoldenRunner, MismatchesNameFileAndLine) {
  GoldenRunner r("inline.txt");
  Status st = r.Run(
      "fleet pool=a nodes=1 gpus=8 rack=0\n"
      "at 0 demand a 4\n"
      "expect pool a internal=5\n"                           // line 3: wrong
      "at 0 spot a 4 price=1 -> error resource_exhausted\n"  // line 4: wrong, it fits
      "expect pool a internal=4 spot=4 free=0 sellable=0\n"  // right
      "expect misses 1\n");                                  // line 6: wrong
  EXPECT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(r.failures().size(), 3u);
  EXPECT_NE(r.failures()[0].find("inline.txt:3: pool a internal: expected 5, got 4"),
            std::string::npos)
      << r.failures()[0];
  EXPECT_NE(r.failures()[1].find("inline.txt:4: spot: expected error resource_exhausted, got ok"),
            std::string::npos)
      << r.failures()[1];
  EXPECT_NE(r.failures()[2].find("inline.txt:6:"), std::string::npos) << r.failures()[2];
}

// Malformed lines stop the run with file:line, never with a crash (the allocator aborts on
// calls that break its preconditions, so the runner must refuse them first).
TEST(AllocGoldenRunner, MalformedLinesFailWithFileAndLine) {
  const std::string fleet = "fleet pool=a nodes=2 gpus=8 rack=0\n";
  struct Case {
    std::string text;
    int line;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"bogus\n", 1, "unknown directive `bogus`"},
      {"\n# comment\nfleet pool=a nodes=x gpus=8 rack=0\n", 3, "expected an integer"},
      {"fleet pool=a nodes=1 gpus=8\n", 1, "missing `rack=`"},
      {"fleet pool=a nodes=1 gpus=100 rack=0\n at 0 advance\n", 2, "`gpus` must be 1..64"},
      {"fleet pool=a nodes=1 gpus=8 rack=0 color=red\n", 1, "unknown key `color`"},
      {"at 0 advance\n", 1, "no `fleet` line"},
      {fleet + "options policy=nope\nat 0 advance\n", 3, "unknown policy `nope`"},
      {fleet + "options policy=oracle\nat 0 advance\n", 3, "future demand"},
      {fleet + "options occupancy=maybe\n", 2, "true or false"},
      {fleet + "options floor=1.2345678\n", 2, "more than 6 decimals"},
      {fleet + "at 0 advance\noptions notice=60\n", 3, "after the first `at`"},
      {fleet + "at 0 advance\nfleet pool=b nodes=1 gpus=8 rack=0\n", 3, "after the first `at`"},
      {fleet + "at 10 advance\nat 5 advance\n", 3, "time goes backwards"},
      {fleet + "at -5 advance\n", 2, "out of range"},
      {fleet + "at\n", 2, "expected `at T ACTION"},
      {fleet + "at 0 fly a 3\n", 2, "unknown action `fly`"},
      {fleet + "at 0 demand zz 3\n", 2, "unknown pool `zz`"},
      {fleet + "at 0 demand a\n", 2, "positional"},
      {fleet + "at 0 demand a -3\n", 2, "out of range"},
      {fleet + "at 0 spot a 8 price=0.5\n", 2, "needs `-> ok NAME`"},
      {fleet + "at 0 spot a 8 max=0.5 -> ok s\n", 2, "missing `price=`"},
      {fleet + "at 0 spot a 8 price=abc -> ok s\n", 2, "bad money amount"},
      {fleet + "at 0 spot a 8 price=0.5 -> maybe\n", 2, "expected `-> ok NAME`"},
      {fleet + "at 0 spot a 8 price=0.5 -> ok s t\n", 2, "one NAME"},
      {fleet + "at 0 spot a 8 price=0.5 -> ok s -> ok t\n", 2, "two `->`"},
      {fleet + "at 0 spot a 8 price=0.5 -> ok s\nat 0 spot a 8 price=0.5 -> ok s\n", 3,
       "named twice"},
      {fleet + "at 0 spot a 99 price=0.5 -> ok s\n", 2, "cannot go on without holder `s`"},
      {fleet + "at 0 release s\n", 2, "unknown holder `s`"},
      {fleet + "at 0 advance -> ok s\n", 2, "takes no `->`"},
      {fleet + "at 0 job a 4 -> ok j\n", 2, "needs occupancy=false"},
      {fleet + "options occupancy=false\nat 0 demand a 4\n", 3, "needs occupancy=true"},
      {fleet + "options occupancy=false\nat 0 job a 4 -> ok j\nat 1 release j\n", 4,
       "not a tenant's"},
      {fleet + "options occupancy=false\nat 0 job a 4 -> ok j\nat 1 finish j\nat 2 finish j\n", 5,
       "not a live job"},
      {fleet + "at 0 spot a 8 price=0.5 -> ok s\nat 1 release s\nat 2 release s\n", 4, "has ended"},
      {fleet + "at 0 spot a 8 price=0.5 -> ok s\nat 1 finish s\n", 3, "not a live job"},
      {fleet + "at 0 inference a 8 price=0.5 -> ok i\nat 1 setprice i 0.6\n", 3, "not spot"},
      {fleet + "at 0 spot a 8 price=0.5 -> ok s\nat 1 setprice s 0.01\n", 3, "below the floor"},
      {fleet + "expect pool a bogus=1\n", 2, "unknown pool counter `bogus`"},
      {fleet + "expect pool a\n", 2, "at least one KEY=N"},
      {fleet + "expect ended x finished\n", 2, "unknown holder `x`"},
      {fleet + "at 0 spot a 8 price=0.5 -> ok s\nexpect ended s gone\n", 3, "unknown end reason"},
      {fleet + "at 0 spot a 8 price=0.5 -> ok s\nexpect sideways s\n", 3, "unknown expectation"},
      {fleet + "at 0 spot a 8 price=0.5 -> ok s\nexpect notice s\n", 3, "missing `reclaim_at=`"},
      {fleet + "expect misses lots\n", 2, "expected an integer"},
      {"bid 1 gpus=8 max=0.5\n", 1, "outside an `auction` block"},
      {"clear -> price=0.5\n", 1, "outside an `auction` block"},
      {"auction supply=8 floor=0.2\nauction supply=8 floor=0.2\n", 2, "missing `clear`"},
      {"auction supply=8 floor=0.2\nbid 1 gpus=0 max=0.5\n", 2, "gpus ≥ 1"},
      {"auction supply=8 floor=0.2\nbid 1 gpus=1 max=0.5\nbid 1 gpus=1 max=0.5\n", 3,
       "given twice"},
      {"auction supply=8 floor=0.2\nbid 1 gpus=1 max=0.5\nclear -> winners=1,x\n", 3,
       "expected an integer"},
      {"auction supply=8 floor=0.2\nbid 1 gpus=1 max=0.5\nclear price=0.5\n", 3,
       "expected `clear ->"},
      {"auction supply=8 floor=0.2\nbid 1 gpus=1 max=0.5\n", 3, "without `clear`"},
  };
  for (const Case& c : cases) {
    GoldenRunner r("bad.txt");
    Status st = r.Run(c.text);
    ASSERT_FALSE(st.ok()) << c.text;
    EXPECT_NE(st.message().find(fmt::format("bad.txt:{}:", c.line)), std::string::npos)
        << st.message() << "\nfor:\n"
        << c.text;
    EXPECT_NE(st.message().find(c.message), std::string::npos) << st.message() << "\nfor:\n"
                                                               << c.text;
  }
}

}  // namespace
}  // namespace ll::alloc
