#include "cli/slice_accounts.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ledger/ledger.h"

namespace ll::cli {

using nlohmann::json;

namespace {

constexpr int kMaxTries = 20;  // as a settlement: backing off to 3.2 s, a standby leads well within that
constexpr auto kTick = std::chrono::milliseconds(50);
// One slice per key per event loop, with one report on its way at a time: usage settled while
// a report is on its way goes with the next, right after it (the natural group commit). Two
// slices per key (lanes, taken in turn) made two reports per round trip for the same usage, and
// each report costs the control plane a commit and an HTTP exchange (docs/benchmarks.md, "Slices").

json UnitsJson(const gateway::SliceUnits& u) {
  return {{"micros", u.micros}, {"requests", u.requests}, {"tokens", u.tokens}};
}

}  // namespace

// A slice and what rides on its reports: the usage since the last one (with the answers
// waiting for it to be durable), and the report on its way.
struct SliceAccounts::Entry {
  Entry(std::string id, const Admission& a, Duration horizon)
      : slice(std::move(id), a.rpm, a.tpm, horizon), tenant_id(a.tenant_id), key_id(a.key_id), rpm(a.rpm), tpm(a.tpm) {}
  gateway::Slice slice;
  std::string tenant_id, key_id;
  int64_t rpm, tpm;
  json usage = json::array();  // [key, model, input_tokens, output_tokens] since the last report
  Time usage_since;            // when the first of it came
  std::vector<std::function<void(Status)>> durable;
  // The report on its way (resent as is until answered).
  gateway::SliceReport sent;
  std::string body;
  std::vector<std::function<void(Status)>> sent_durable;
  Time sent_at;
  int tries = 0;
  bool closing = false;  // no more admissions: returned once its requests end
  boost::asio::steady_timer* retry = nullptr;
};

SliceAccounts::SliceAccounts(boost::asio::io_context& ioc, RemoteAccounts& remote, market::PriceBook prices,
                             const Clock* clock, gateway::SliceOptions options, Duration flush)
    : ioc_(ioc),
      remote_(remote),
      prices_(std::move(prices)),
      clock_(clock),
      options_(options),
      timer_(ioc),
      flush_(flush),
      flush_timer_(ioc) {
  std::random_device rd;
  gateway_id_ = fmt::format("{:08x}{:08x}", rd(), rd());
  Tick();
}

SliceAccounts::~SliceAccounts() {
  timer_.cancel();
  flush_timer_.cancel();
}

void SliceAccounts::ArmFlush(Time at) {
  if (flush_armed_ && flush_at_ <= at) return;
  flush_armed_ = true;
  flush_at_ = at;
  flush_timer_.expires_after(std::chrono::milliseconds(std::max<int64_t>(0, (at - clock_->Now()).ms)));
  flush_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    flush_armed_ = false;
    std::vector<Entry*> all;
    for (auto& e : slices_) all.push_back(e.get());
    for (Entry* e : all) Pump(*e);
  });
}

int64_t SliceAccounts::Cost(const Usage& u) const {
  const market::PriceBook::TokenPrices tp = prices_.TokenPricesFor(u.model);
  return ledger::TokenCost(u.input_tokens, tp.input_per_mtok).micros +
         ledger::TokenCost(u.output_tokens, tp.output_per_mtok).micros;
}

SliceAccounts::Entry* SliceAccounts::Current(const Admission& a) {
  auto it = by_key_.find(a.key_id);
  if (it != by_key_.end()) {
    Entry* e = it->second;
    if (!e->slice.ended() && e->tenant_id == a.tenant_id && e->rpm == a.rpm && e->tpm == a.tpm) return e;
    e->closing = true;  // ended on the control plane, or the key's limits changed: a new slice
    by_key_.erase(it);
    Pump(*e);
  }
  if (closing_) return nullptr;
  auto e = std::make_unique<Entry>(fmt::format("sl_{}_{}", gateway_id_, ++next_slice_), a, options_.horizon);
  Entry* raw = e.get();
  slices_.push_back(std::move(e));
  by_key_[a.key_id] = raw;
  return raw;
}

void SliceAccounts::TakeLimits(const Admission& a, std::function<void(gateway::RateLimits::Decision)> done) {
  Entry* e = Current(a);
  const gateway::SliceUnits units{.micros = a.amount.micros, .requests = 1, .tokens = a.tokens};
  if (e != nullptr && e->slice.Admit(clock_->Now(), units)) {
    admitted_[a.hold_id] = {e, units};
    gateway::RateLimits::Decision d;
    d.limit_requests = a.rpm;
    d.limit_tokens = a.tpm;
    d.remaining_requests = a.rpm > 0 ? e->slice.free().requests : 0;
    d.remaining_tokens = a.tpm > 0 ? e->slice.free().tokens : 0;
    Pump(*e);
    done(d);
    return;
  }
  if (e != nullptr) Pump(*e);  // to grow it
  remote_.TakeLimits(a, std::move(done));
}

void SliceAccounts::Hold(const Admission& a, std::function<void(Status)> done) {
  if (admitted_.contains(a.hold_id)) {
    done(Status::Ok());  // held by the slice when its limits were taken
    return;
  }
  remote_.Hold(a, std::move(done));
}

void SliceAccounts::GiveBackLimits(const std::string& hold_id) {
  auto it = admitted_.find(hold_id);
  if (it == admitted_.end()) {
    remote_.GiveBackLimits(hold_id);
    return;
  }
  Entry& e = *it->second.entry;
  e.slice.GiveBack(it->second.units);
  admitted_.erase(it);
  Pump(e);
}

void SliceAccounts::Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) {
  auto it = admitted_.find(hold_id);
  if (it == admitted_.end()) {
    remote_.Settle(hold_id, usage, std::move(durable));
    return;
  }
  Entry& e = *it->second.entry;
  e.slice.Settle(it->second.units, Cost(usage), usage.input_tokens + usage.output_tokens);
  admitted_.erase(it);
  if (usage.input_tokens > 0 || usage.output_tokens > 0) {
    if (e.usage.empty()) e.usage_since = clock_->Now();
    e.usage.push_back(json::array({usage.key, usage.model, usage.input_tokens, usage.output_tokens}));
    if (durable) e.durable.push_back(std::move(durable));
  } else if (durable) {
    durable(Status::Ok());  // nothing to bill
  }
  Pump(e);
}

void SliceAccounts::Pump(Entry& e) {
  if (e.slice.reporting()) return;
  const Time now = clock_->Now();
  if (e.closing && e.slice.in_flight() == 0 && !e.slice.ended()) {
    Send(e, /*close=*/true);
  } else if (!e.usage.empty() && now < e.usage_since + flush_) {
    ArmFlush(e.usage_since + flush_);  // a little more usage may come: one report for it all
  } else if (e.slice.WantsReport(now)) {
    Send(e, /*close=*/false);
  } else if (e.slice.ended() && e.slice.in_flight() == 0 && !e.slice.HasNews()) {
    Forget(&e);
  }
}

void SliceAccounts::Send(Entry& e, bool close) {
  const Time now = clock_->Now();
  e.sent = e.slice.MakeReport(now, close);
  e.sent_at = now;
  e.tries = 0;
  e.sent_durable = std::move(e.durable);
  e.durable.clear();
  json body = {{"seq", e.sent.seq},
               {"tenant_id", e.tenant_id},
               {"key_id", e.key_id},
               {"rpm", e.rpm},
               {"tpm", e.tpm},
               {"usage", std::move(e.usage)},
               {"used", UnitsJson(e.sent.used)},
               {"tokens_back", e.sent.tokens_back},
               {"requests_back", e.sent.requests_back},
               {"give_back", UnitsJson(e.sent.give_back)},
               {"want", UnitsJson(e.sent.want)},
               {"min", UnitsJson(e.sent.min)},
               {"close", close}};
  e.usage = json::array();
  e.body = body.dump();
  Post(e);
}

void SliceAccounts::Post(Entry& e) {
  remote_.Call("POST", "/admin/slices/" + e.slice.id(), e.body,
               [this, entry = &e](const Result<HttpResponse>& r) { OnAnswer(*entry, r); });
}

void SliceAccounts::OnAnswer(Entry& e, const Result<HttpResponse>& r) {
  const bool transient = !r.ok() || r->status >= 500 || r->status == 429;
  if (transient && ++e.tries < kMaxTries) {  // the same report again: applied once by its seq
    auto timer = std::make_shared<boost::asio::steady_timer>(ioc_);
    timer->expires_after(std::chrono::milliseconds(50 << std::min(e.tries, 6)));
    timer->async_wait([this, entry = &e, timer](const boost::system::error_code& ec) {
      if (!ec) Post(*entry);
    });
    return;
  }
  json j = r.ok() ? json::parse(r->body, nullptr, false) : json();
  if (transient || r->status != 200 || !j.is_object() || !j.contains("held")) {
    const std::string why = r.ok() ? fmt::format("HTTP {} {}", r->status, r->body) : r.status().message();
    fmt::print(stderr, "landlord gateway: slice `{}` report {} failed: {}\n", e.slice.id(), e.sent.seq, why);
    e.slice.Acknowledge(e.sent, e.sent_at, {}, Duration{});
    e.slice.End();  // nothing more admitted from it; its requests' usage can no longer be made durable
    Finish(e, Status::Io(fmt::format("the control plane did not take the usage: {}", why)));
  } else {
    const json& held = j["held"];
    e.slice.Acknowledge(e.sent, e.sent_at,
                        {.micros = held.value("micros", int64_t{0}),
                         .requests = held.value("requests", int64_t{0}),
                         .tokens = held.value("tokens", int64_t{0})},
                        Duration::Millis(j.value("ttl_ms", int64_t{0})));
    if (j.value("state", "") != "open") e.slice.End();
    Finish(e, Status::Ok());
  }
  Pump(e);  // what came meanwhile (this may forget `e`)
}

void SliceAccounts::Finish(Entry& e, const Status& st) {
  std::vector<std::function<void(Status)>> done;
  done.swap(e.sent_durable);
  for (auto& f : done) f(st);
}

void SliceAccounts::Forget(Entry* e) {
  auto k = by_key_.find(e->key_id);
  if (k != by_key_.end() && k->second == e) by_key_.erase(k);
  std::erase_if(slices_, [e](const std::unique_ptr<Entry>& p) { return p.get() == e; });
}

void SliceAccounts::Tick() {
  const Time now = clock_->Now();
  std::vector<Entry*> all;
  all.reserve(slices_.size());
  for (auto& e : slices_) all.push_back(e.get());
  for (Entry* e : all) {
    // Idle: returned, so that its money and units serve the key elsewhere.
    if (!e->closing && e->slice.in_flight() == 0 && now - e->slice.last_admitted() >= options_.idle) {
      e->closing = true;
      if (auto k = by_key_.find(e->key_id); k != by_key_.end() && k->second == e) by_key_.erase(k);
    }
    Pump(*e);
  }
  timer_.expires_after(kTick);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Tick();
  });
}

void SliceAccounts::CloseAll() {
  closing_ = true;
  by_key_.clear();
  std::vector<Entry*> all;
  for (auto& e : slices_) all.push_back(e.get());
  for (Entry* e : all) {
    e->closing = true;
    Pump(*e);
  }
}

}  // namespace ll::cli
