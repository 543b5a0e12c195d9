// `landlord serve` end to end over loopback: a real server process, a real SQLite file, the
// real HTTP client. The server clock runs at 20x, so the 20 s notice is 1 s of wall time.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <chrono>
#include <mutex>
#include <atomic>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "api/serve_test_util.h"
#include "core/money.h"
#include "core/time.h"

namespace ll::testing {
namespace {

using nlohmann::json;

class ServeTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& policy, const std::string& extra = "") {
    dir_ = TempDir();
    config_ = TestConfig(dir_, policy, extra);
    server_.Start(config_);
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Stop(), 0) << "SIGTERM must end the server cleanly";
    }
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  json Call(const std::string& key, const std::string& method, const std::string& target, const json& body = nullptr,
            int* status = nullptr) {
    auto c = server_.Client(key);
    auto r = c.Request(method, target, body.is_null() ? "" : body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    if (status != nullptr) *status = r->status;
    return Json(*r);
  }
  json CreateSpot(const std::string& key, int gpus, const std::string& max_price, int expect = 201) {
    int status = 0;
    json l = Call(key, "POST", "/v1/leases", {{"kind", "spot"}, {"gpus", gpus}, {"max_price_per_gpu_hour", max_price}},
                  &status);
    EXPECT_EQ(status, expect) << l.dump();
    return l;
  }
  // Every event of a lease's stream until it ends (the lease reaches a final state).
  std::vector<json> Watch(const std::string& key, const std::string& id) { return WatchLease(server_, key, id); }

  std::string dir_, config_;
  ServeProcess server_;
};

Time T(const json& v) {
  auto t = ParseUtc(v.get<std::string>());
  EXPECT_TRUE(t.ok()) << v;
  return t.ok() ? *t : Time{};
}

TEST_F(ServeTest, SpotLifecycleOwnerDemandNoticeThenReclaimAtReclaimAt) {
  StartServer("spot-all");
  std::string key = NewTenantKey(server_, "acme");
  json lease = CreateSpot(key, 8, "2.00");
  EXPECT_EQ(lease["state"], "active");
  EXPECT_EQ(lease["gpus"], 8);
  EXPECT_EQ(lease["nodes"].size(), 1u);
  std::string id = lease["id"];
  // The owner wants the whole fleet: the lease gets the notice, then is reclaimed.
  int status = 0;
  Call(kAdminKey, "POST", "/admin/internal-jobs", {{"gpus", 32}, {"duration_s", 3600}}, &status);
  EXPECT_EQ(status, 201);
  std::vector<json> events = Watch(key, id);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front()["_event"], "active");
  const json* notice = nullptr;
  for (const json& e : events) {
    if (e["_event"] == "reclaim_notice") notice = &e;
  }
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ((*notice)["reason"], "internal_demand");
  EXPECT_EQ((T((*notice)["reclaim_at"]) - T((*notice)["at"])).ms, 20'000) << "reclaim_at = now + notice";
  EXPECT_EQ(events.back()["_event"], "reclaimed");
  EXPECT_EQ(T(events.back()["at"]), T((*notice)["reclaim_at"])) << "released exactly at reclaim_at";
  json final = Call(key, "GET", "/v1/leases/" + id);
  EXPECT_EQ(final["state"], "reclaimed");
  EXPECT_EQ(final["end_reason"], "reclaimed");
  EXPECT_EQ(T(final["ended_at"]), T(final["reclaim_at"]));
}

TEST_F(ServeTest, EarlyReleaseByTheTenant) {
  StartServer("spot-all");
  std::string key = NewTenantKey(server_, "acme");
  json lease = CreateSpot(key, 4, "1.00");
  int status = 0;
  json released = Call(key, "DELETE", "/v1/leases/" + lease["id"].get<std::string>(), nullptr, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(released["state"], "released");
  EXPECT_EQ(released["end_reason"], "released");
  // Again: unchanged, still 200.
  json again = Call(key, "DELETE", "/v1/leases/" + lease["id"].get<std::string>(), nullptr, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(again, released);
  std::vector<json> events = Watch(key, lease["id"]);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["_event"], "active");
  EXPECT_EQ(events[1]["_event"], "released");
  // The GPUs are free again.
  json fleet = Call(kAdminKey, "GET", "/admin/fleet");
  EXPECT_EQ(fleet["pools"][0]["spot"], 0);
}

TEST_F(ServeTest, PriceRiseAboveMaxPriceGivesANotice) {
  StartServer("spot-all");
  std::string key = NewTenantKey(server_, "acme");
  json cheap = CreateSpot(key, 8, "0.50");
  json rich = CreateSpot(key, 8, "5.00");
  int status = 0;
  json policy = Call(kAdminKey, "PUT", "/admin/policy", {{"floor_per_gpu_hour", "1.00"}}, &status);
  EXPECT_EQ(status, 200) << policy.dump();
  EXPECT_EQ(policy["floor_per_gpu_hour"], "1.00");
  json c = Call(key, "GET", "/v1/leases/" + cheap["id"].get<std::string>());
  EXPECT_EQ(c["state"], "noticed");
  json r = Call(key, "GET", "/v1/leases/" + rich["id"].get<std::string>());
  EXPECT_EQ(r["state"], "active");
  EXPECT_EQ(r["price_per_gpu_hour"], "1.00");
  std::vector<json> events = Watch(key, cheap["id"]);
  bool saw = false;
  for (const json& e : events) saw = saw || (e["_event"] == "reclaim_notice" && e["reason"] == "price_above_max");
  EXPECT_TRUE(saw);
  EXPECT_EQ(events.back()["_event"], "reclaimed");
  // A new lease below the market price is refused and creates nothing.
  json refused = CreateSpot(key, 1, "0.90", 409);
  EXPECT_EQ(refused["error"]["code"], "price_below_market");
}

// The flash tier (a 5 s notice here, the standard one 20 s): chosen at create, kept on the
// lease (across a restart), in quotes and prices with its own price, and reclaimed before the
// standard leases with its own notice.
TEST_F(ServeTest, FlashTierIsChosenAtCreatePricedOnItsOwnAndReclaimedFirstWithItsNotice) {
  StartServer("spot-all", "flash_notice_s = 5");
  std::string key = NewTenantKey(server_, "acme");
  json prices = Call(key, "GET", "/v1/prices");
  ASSERT_EQ(prices["spot_tiers"].size(), 2u) << prices.dump();
  EXPECT_EQ(prices["spot_tiers"][0]["notice_tier"], "standard");
  EXPECT_EQ(prices["spot_tiers"][0]["notice_s"], 20);
  EXPECT_EQ(prices["spot_tiers"][0]["price_per_gpu_hour"], prices["spot_per_gpu_hour"]);
  EXPECT_EQ(prices["spot_tiers"][1]["notice_tier"], "flash");
  EXPECT_EQ(prices["spot_tiers"][1]["notice_s"], 5);
  EXPECT_EQ(prices["spot_tiers"][1]["discount"], 0.3);
  // At the floor both tiers pay the floor (a discount never goes below it).
  EXPECT_EQ(prices["spot_tiers"][1]["price_per_gpu_hour"], prices["floor_per_gpu_hour"]);
  json quote = Call(key, "GET", "/v1/quotes?gpus=8");
  ASSERT_EQ(quote["spot_tiers"].size(), 2u) << quote.dump();
  EXPECT_EQ(quote["spot_tiers"][1]["notice_tier"], "flash");
  EXPECT_EQ(quote["spot_tiers"][1]["available_gpus"], 24);  // the owner holds 8 of 32
  EXPECT_EQ(quote["spot_tiers"][1]["available"], true);

  json standard = CreateSpot(key, 8, "2.00");
  EXPECT_EQ(standard["notice_tier"], "standard");
  int status = 0;
  json flash = Call(key, "POST", "/v1/leases",
                    {{"gpus", 8}, {"max_price_per_gpu_hour", "2.00"}, {"notice_tier", "flash"}}, &status);
  ASSERT_EQ(status, 201) << flash.dump();
  EXPECT_EQ(flash["notice_tier"], "flash");
  EXPECT_EQ(flash["price_per_gpu_hour"], prices["spot_tiers"][1]["price_per_gpu_hour"]);
  // Bad tiers are refused naming the field, and create nothing.
  for (const json& bad : {json{{"gpus", 1}, {"max_price_per_gpu_hour", "2.00"}, {"notice_tier", "instant"}},
                          json{{"gpus", 1}, {"max_price_per_gpu_hour", "2.00"}, {"notice_tier", 30}},
                          json{{"kind", "reserved"}, {"gpus", 8}, {"duration_s", 3600}, {"notice_tier", "flash"}}}) {
    json e = Call(key, "POST", "/v1/leases", bad, &status);
    EXPECT_EQ(status, 400) << bad.dump() << " → " << e.dump();
    EXPECT_EQ(e["error"]["param"], "notice_tier") << e.dump();
  }
  EXPECT_EQ(Call(key, "GET", "/v1/leases")["data"].size(), 2u);

  // A restart keeps the tier.
  ASSERT_EQ(server_.Stop(), 0);
  server_.Start(config_);
  EXPECT_EQ(Call(key, "GET", "/v1/leases/" + flash["id"].get<std::string>())["notice_tier"], "flash");

  // The owner wants 16 more GPUs; 8 are free: the flash lease goes, after its 5 s notice.
  Call(kAdminKey, "POST", "/admin/internal-jobs", {{"gpus", 16}, {"duration_s", 3600}}, &status);
  EXPECT_EQ(status, 201);
  std::vector<json> events = Watch(key, flash["id"]);
  const json* notice = nullptr;
  for (const json& e : events) {
    if (e["_event"] == "reclaim_notice") notice = &e;
  }
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ((*notice)["reason"], "internal_demand");
  EXPECT_EQ((T((*notice)["reclaim_at"]) - T((*notice)["at"])).ms, 5'000) << "the flash tier's notice";
  EXPECT_EQ(events.back()["_event"], "reclaimed");
  EXPECT_EQ(Call(key, "GET", "/v1/leases/" + standard["id"].get<std::string>())["state"], "active");
}

// No flash tier when its notice is not shorter than the standard one: quotes show one tier and
// a flash lease is refused naming the field.
TEST_F(ServeTest, FlashTierRefusedWhenNotOffered) {
  StartServer("spot-all", "flash_notice_s = 0");
  std::string key = NewTenantKey(server_, "acme");
  EXPECT_EQ(Call(key, "GET", "/v1/quotes")["spot_tiers"].size(), 1u);
  int status = 0;
  json e = Call(key, "POST", "/v1/leases", {{"gpus", 8}, {"max_price_per_gpu_hour", "2.00"}, {"notice_tier", "flash"}},
                &status);
  EXPECT_EQ(status, 409) << e.dump();
  EXPECT_EQ(e["error"]["code"], "tier_unavailable");
  EXPECT_EQ(e["error"]["param"], "notice_tier");
  EXPECT_TRUE(Call(key, "GET", "/v1/leases")["data"].empty());
}

TEST_F(ServeTest, ReservedAcceptedWhenTheForecastAllowsRefusedWhenNotNeverReclaimed) {
  StartServer("landlord");
  std::string key = NewTenantKey(server_, "acme");
  json quote = Call(key, "GET", "/v1/quotes?gpus=8");
  ASSERT_TRUE(quote["reserved"].is_array());
  EXPECT_EQ(quote["reserved"][0]["duration_s"], 4 * 3600);
  EXPECT_GE(quote["reserved"][0]["max_gpus"].get<int>(), 8) << quote.dump();
  int status = 0;
  json big = Call(key, "POST", "/v1/leases", {{"kind", "reserved"}, {"gpus", 32}, {"duration_s", 4 * 3600}}, &status);
  EXPECT_EQ(status, 409) << big.dump();
  EXPECT_EQ(big["error"]["code"], "forecast_conflict");
  EXPECT_NE(big["error"]["message"].get<std::string>().find("largest accepted"), std::string::npos);
  int accepted = big["error"]["accepted"]["gpus"];
  EXPECT_GE(accepted, 8);
  EXPECT_LT(accepted, 32);
  json res = Call(key, "POST", "/v1/leases", {{"kind", "reserved"}, {"gpus", 8}, {"duration_s", 4 * 3600}}, &status);
  ASSERT_EQ(status, 201) << res.dump();
  EXPECT_EQ(res["kind"], "reserved");
  EXPECT_EQ((T(res["term_end"]) - T(res["started_at"])).ms, 4 * 3600 * 1000);
  json spot = CreateSpot(key, 8, "2.00");
  // The owner wants everything: spot is noticed, the reserved lease is not.
  Call(kAdminKey, "POST", "/admin/internal-jobs", {{"gpus", 32}, {"duration_s", 3600}}, &status);
  EXPECT_EQ(status, 201);
  std::vector<json> events = Watch(key, spot["id"]);
  EXPECT_EQ(events.back()["_event"], "reclaimed");
  json r = Call(key, "GET", "/v1/leases/" + res["id"].get<std::string>());
  EXPECT_EQ(r["state"], "active");
  EXPECT_EQ(r["noticed_at"], nullptr);
  std::string metrics;
  auto c = server_.Client("");
  auto m = c.Request("GET", "/metrics");
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->body.find("landlord_reserved_violations_total 0"), std::string::npos);
  EXPECT_NE(m->body.find("\nlandlord_spot_price_usd_per_gpu_hour "), std::string::npos);
  // Every sample's name is a Prometheus metric name.
  std::istringstream lines(m->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const std::string name = line.substr(0, line.find_first_of("{ "));
    EXPECT_TRUE(std::regex_match(name, std::regex("[a-zA-Z_:][a-zA-Z0-9_:]*"))) << line;
  }
}

// `start_at`: a reserved term booked for later is promised out of the forecast now, holds no
// GPUs until it starts, makes spot leases leave by then (a notice at start - notice), survives
// a restart, and can be cancelled before it starts.
TEST_F(ServeTest, ReservedWithStartAtIsBookedAndStartsOnTimeSpotMakesWay) {
  StartServer("landlord");
  std::string key = NewTenantKey(server_, "acme");
  json spot = CreateSpot(key, 8, "2.00");
  const Time now = T(Call(kAdminKey, "GET", "/admin/fleet")["now"]);
  const Time start = now + Duration::Seconds(200);  // 10 s of wall time at 20x
  auto book = [&](int gpus, Time at, int* status) {
    return Call(key, "POST", "/v1/leases",
                {{"kind", "reserved"}, {"gpus", gpus}, {"duration_s", 3600}, {"start_at", FormatUtc(at)}}, status);
  };
  int status = 0;
  json e = Call(key, "POST", "/v1/leases",
                {{"gpus", 1}, {"max_price_per_gpu_hour", "2.00"}, {"start_at", FormatUtc(start)}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(e["error"]["param"], "start_at");
  e = book(8, now + Duration::Seconds(5), &status);  // inside the 20 s notice
  EXPECT_EQ(status, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("reclaim notice"), std::string::npos) << e.dump();
  e = Call(key, "POST", "/v1/leases", {{"kind", "reserved"}, {"gpus", 8}, {"duration_s", 3600}, {"start_at", "soon"}},
           &status);
  EXPECT_EQ(status, 400);

  // Booked GPUs count against later promises; a cancelled booking gives them back.
  json big = book(32, start, &status);
  ASSERT_EQ(status, 409) << big.dump();
  const int room = big["error"]["accepted"]["gpus"];
  ASSERT_GE(room, 16) << big.dump();
  json small = book(8, start + Duration::Seconds(100), &status);
  ASSERT_EQ(status, 201) << small.dump();
  EXPECT_EQ(small["state"], "scheduled");
  EXPECT_EQ(book(32, start, &status)["error"]["accepted"]["gpus"], room - 8);
  EXPECT_EQ(Call(key, "DELETE", "/v1/leases/" + small["id"].get<std::string>())["state"], "released");
  EXPECT_EQ(book(32, start, &status)["error"]["accepted"]["gpus"], room);

  // The largest booking: with the 8-GPU spot lease sold, it cannot start unless spot leaves.
  json res = book(room, start, &status);
  ASSERT_EQ(status, 201) << res.dump();
  EXPECT_EQ(res["state"], "scheduled");
  EXPECT_EQ(T(res["started_at"]), start);
  EXPECT_EQ((T(res["term_end"]) - start).ms, 3600 * 1000);
  json fleet = Call(kAdminKey, "GET", "/admin/fleet");
  EXPECT_EQ(fleet["pools"][0]["reserved"], 0) << "a booking holds nothing before it starts";

  // A restart keeps the booking.
  ASSERT_EQ(server_.Stop(), 0);
  server_.Start(config_);
  EXPECT_EQ(Call(key, "GET", "/v1/leases/" + res["id"].get<std::string>())["state"], "scheduled");

  std::vector<json> events = Watch(key, spot["id"]);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2]["_event"], "reclaim_notice");
  EXPECT_EQ(T(events[events.size() - 2]["reclaim_at"]), start);
  EXPECT_EQ(events.back()["_event"], "reclaimed");
  std::vector<json> res_events;
  auto c = server_.Client(key);
  Status st = c.Stream("/v1/leases/" + res["id"].get<std::string>() + "/events", [&](const cli::SseEvent& ev) {
    res_events.push_back(json::parse(ev.data, nullptr, false));
    res_events.back()["_event"] = ev.event;
    return ev.event != "active";
  });
  ASSERT_GE(res_events.size(), 2u);
  EXPECT_EQ(res_events[0]["_event"], "scheduled");
  EXPECT_EQ(res_events.back()["_event"], "active");
  EXPECT_EQ(T(res_events.back()["at"]), start);
  auto m = server_.Client("").Request("GET", "/metrics");
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->body.find("landlord_reserved_violations_total 0"), std::string::npos);
}

// Billing: a lease's GPU-time reaches the tenant's usage and invoice exactly once (through a
// restart and a kill -9), to the micro-dollar of gpus × time × price; only its tenant sees it.
TEST_F(ServeTest, LeaseUsageIsBilledExactlyOnceAndOnlyToItsTenant) {
  StartServer("spot-all");
  std::string tenant_a;
  std::string a = NewTenantKey(server_, "a", &tenant_a);
  std::string b = NewTenantKey(server_, "b");
  json lease = CreateSpot(a, 2, "5.00");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  json released = Call(a, "DELETE", "/v1/leases/" + lease["id"].get<std::string>());
  ASSERT_EQ(released["state"], "released");
  const Time start = T(released["started_at"]), end = T(released["ended_at"]);
  json usage = Call(a, "GET", "/v1/usage");
  ASSERT_FALSE(usage["data"].empty()) << usage.dump();
  // Independently: Σ over the lease's price pieces of gpus × ms × price, floored once.
  __int128 num = 0;
  int64_t sum = 0;
  int64_t last = -1;
  for (const json& e : usage["data"]) {
    EXPECT_EQ(e["lease_id"], lease["id"]);
    const int64_t s0 = e["start_ms"], s1 = e["end_ms"];
    if (last >= 0) {
      EXPECT_EQ(s0, last) << "the pieces tile the lease";
    }
    EXPECT_EQ(e["gpu_ms"].get<int64_t>(), 2 * (s1 - s0));
    last = s1;
    auto price = ParseMoney(e["price_per_gpu_hour"].get<std::string>());
    ASSERT_TRUE(price.ok());
    num += static_cast<__int128>(2) * (s1 - s0) * price->micros;
    sum += e["amount_micros"].get<int64_t>();
  }
  EXPECT_EQ(FormatUtc(Time{usage["data"][0]["start_ms"].get<int64_t>()}), FormatUtc(start));
  EXPECT_EQ(FormatUtc(Time{last}), FormatUtc(end)) << "billed to the lease's end";
  EXPECT_EQ(sum, static_cast<int64_t>(num / 3'600'000)) << usage.dump(1);
  EXPECT_EQ(usage["total_micros"].get<int64_t>(), sum);
  EXPECT_GT(sum, 0);
  const std::string period = usage["period"];

  auto invoice = [&](const std::string& key, const std::string& query = "") {
    return Call(key, "GET", "/v1/invoices/" + period + query);
  };
  json inv = invoice(a);
  EXPECT_EQ(inv["total_micros"].get<int64_t>(), sum);
  int64_t items = 0;
  for (const json& li : inv["items"]) items += li["amount_micros"].get<int64_t>();
  EXPECT_EQ(items, sum);
  json list = Call(a, "GET", "/v1/invoices");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["total_micros"].get<int64_t>(), sum);
  auto csv = server_.Client(a).Request("GET", "/v1/invoices/" + period + "?format=csv");
  ASSERT_TRUE(csv.ok());
  EXPECT_EQ(csv->content_type, "text/csv; charset=utf-8");
  EXPECT_NE(csv->body.find(",total,,,"), std::string::npos) << csv->body;

  // Exactly once: a clean restart and a kill -9 bill nothing again.
  ASSERT_EQ(server_.Stop(), 0);
  server_.Start(config_);
  server_.Kill9();
  server_.Start(config_);
  EXPECT_EQ(invoice(a)["total_micros"].get<int64_t>(), sum);
  EXPECT_EQ(Call(a, "GET", "/v1/usage?period=" + period)["data"].size(), usage["data"].size());

  // Only its tenant (and the owner) sees it.
  EXPECT_TRUE(Call(b, "GET", "/v1/usage")["data"].empty());
  EXPECT_TRUE(Call(b, "GET", "/v1/invoices")["data"].empty());
  int status = 0;
  Call(b, "GET", "/v1/invoices/" + period + "?tenant_id=" + tenant_a, nullptr, &status);
  EXPECT_EQ(status, 404);
  Call(b, "GET", "/v1/usage?tenant_id=" + tenant_a, nullptr, &status);
  EXPECT_EQ(status, 404);
  EXPECT_EQ(invoice(kAdminKey, "?tenant_id=" + tenant_a)["total_micros"].get<int64_t>(), sum);
  Call(kAdminKey, "GET", "/v1/invoices", nullptr, &status);
  EXPECT_EQ(status, 400);
  for (const char* bad : {"/v1/invoices/2024-13", "/v1/usage?period=may", "/v1/invoices/" "2024-01?format=pdf",
                          "/v1/prices?from=yesterday", "/v1/prices?from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z"}) {
    json e = Call(a, "GET", bad, nullptr, &status);
    EXPECT_EQ(status, 400) << bad;
    EXPECT_TRUE(e["error"]["param"].is_string()) << bad << " " << e.dump();
  }
  // The owner's report and /metrics carry the same billed figure.
  json report = Call(kAdminKey, "GET", "/admin/report?period=" + period);
  EXPECT_EQ(report["billed"]["total_micros"].get<int64_t>(), sum) << report.dump();
  EXPECT_EQ(report["billed"]["spot"], FormatMoney(Money::Micros(sum)));
  EXPECT_TRUE(report["since_start"]["utilization"]["spot"].is_number()) << "since this start (the server restarted)";
  auto metrics = server_.Client("").Request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  const std::string billed = "landlord_billed_usd_total{class=\"spot\"} ";
  const size_t at = metrics->body.find(billed);
  ASSERT_NE(at, std::string::npos) << metrics->body;
  EXPECT_NEAR(std::stod(metrics->body.substr(at + billed.size())), static_cast<double>(sum) / 1e6, 1e-9);
  EXPECT_NE(metrics->body.find("landlord_revenue_usd_per_gpu_hour "), std::string::npos);
  // Below a million tokens there is no cost per million tokens to tell (issue 21).
  EXPECT_EQ(metrics->body.find("landlord_cost_usd_per_million_tokens"), std::string::npos);
  EXPECT_TRUE(report["since_start"]["cost_per_mtok_usd"].is_null()) << report.dump();
  Call(a, "GET", "/admin/report", nullptr, &status);
  EXPECT_EQ(status, 403);
  // The spot price history over the lease's life.
  json prices = Call(a, "GET", "/v1/prices?from=" + FormatUtc(start) + "&to=" + FormatUtc(end));
  ASSERT_FALSE(prices["history"].empty()) << prices.dump();
  EXPECT_EQ(T(prices["history"][0]["at"]), start);
}

// 64 concurrent clients reserve and settle against one prepaid balance: it is never
// overspent, every charge is accounted for, and the balance runs out (402) rather than over.
TEST_F(ServeTest, ConcurrentReservationsNeverOverspendABalance) {
  StartServer("spot-all");
  std::string tenant;
  NewTenantKey(server_, "acme", &tenant);
  int status = 0;
  json credited = Call(kAdminKey, "POST", "/admin/credits", {{"tenant_id", tenant}, {"amount", "10.00"}}, &status);
  ASSERT_EQ(status, 200) << credited.dump();
  std::atomic<int64_t> charged{0}, refused{0}, negative{0};
  std::mutex mu;
  std::string settled_id;  // one hold that was settled, to retry its settlement below
  std::vector<std::thread> clients;
  for (int c = 0; c < 64; ++c) {
    clients.emplace_back([&, c] {
      auto client = server_.Client(kAdminKey);
      std::mt19937_64 rng(c);
      for (int i = 0; i < 40; ++i) {
        const std::string id = fmt::format("req_{}_{}", c, i);
        const int64_t worst = 50'000 + static_cast<int64_t>(rng() % 200'000);  // $0.05..0.25
        auto r = client.Request("POST", "/admin/holds",
                                json{{"id", id}, {"tenant_id", tenant}, {"amount", FormatMoney(Money::Micros(worst))}}.dump());
        if (!r.ok()) continue;
        if (r->status == 402) {
          ++refused;
          continue;
        }
        if (r->status != 201) continue;
        if (Json(*r)["balance"]["available_micros"].get<int64_t>() < 0) ++negative;
        const int64_t used = static_cast<int64_t>(rng() % (worst + 1));
        auto s = client.Request("POST", "/admin/holds/" + id + "/settle",
                                json{{"amount", FormatMoney(Money::Micros(used))}}.dump());
        if (s.ok() && s->status == 200) {
          auto m = ParseMoney(Json(*s)["charged"].get<std::string>());
          if (m.ok()) charged += m->micros;
          std::lock_guard<std::mutex> lock(mu);
          if (settled_id.empty()) settled_id = id;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  json balance = Call(kAdminKey, "GET", "/v1/balance?tenant_id=" + tenant);
  EXPECT_EQ(negative.load(), 0);
  EXPECT_GT(refused.load(), 0) << "the balance must run out in this test";
  EXPECT_EQ(balance["charged"], FormatMoney(Money::Micros(charged.load())));
  EXPECT_EQ(balance["held"], "0.00");
  EXPECT_GE(balance["available_micros"].get<int64_t>(), 0);
  EXPECT_LE(charged.load(), 10'000'000);
  // A retried settlement changes nothing; an unknown hold is 404. (Which client's hold was
  // settled first depends on thread scheduling: an early one may have found the balance held.)
  ASSERT_FALSE(settled_id.empty());
  json again = Call(kAdminKey, "POST", "/admin/holds/" + settled_id + "/settle", {{"amount", "0.01"}}, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(Call(kAdminKey, "GET", "/v1/balance?tenant_id=" + tenant)["charged"], balance["charged"]);
  Call(kAdminKey, "POST", "/admin/holds/nope/settle", {{"amount", "0.01"}}, &status);
  EXPECT_EQ(status, 404);
}

// The rate limits a control plane keeps for every standalone gateway: a hold with `limits`
// takes one request and its tokens from the key's buckets, a refusal is 429 with the decision
// (and holds nothing), a settlement gives back what was not used, and bad `limits` name the
// field.
TEST_F(ServeTest, HoldsTakeTheKeysRateLimitsSharedByEveryGateway) {
  StartServer("spot-all");
  std::string tenant;
  NewTenantKey(server_, "acme", &tenant);
  int status = 0;
  Call(kAdminKey, "POST", "/admin/credits", {{"tenant_id", tenant}, {"amount", "10.00"}}, &status);
  ASSERT_EQ(status, 200);
  auto hold = [&](const std::string& id, int64_t tokens) {
    return Call(kAdminKey, "POST", "/admin/holds",
                {{"id", id}, {"tenant_id", tenant}, {"amount", "0.01"},
                 {"limits", {{"key_id", "key_x"}, {"rpm", 100}, {"tpm", 1000}, {"tokens", tokens}}}},
                &status);
  };
  json first = hold("h1", 600);
  ASSERT_EQ(status, 201) << first.dump();
  EXPECT_EQ(first["limits"]["ok"], true);
  EXPECT_EQ(first["limits"]["limit_tokens"], 1000);
  EXPECT_EQ(first["limits"]["remaining_tokens"], 400);
  json refused = hold("h2", 600);  // 400 left: refused, and nothing is held for it
  ASSERT_EQ(status, 429) << refused.dump();
  EXPECT_EQ(refused["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(refused["limits"]["ok"], false);
  EXPECT_EQ(refused["limits"]["tokens"], true);
  EXPECT_GT(refused["limits"]["retry_after_ms"].get<int64_t>(), 0);
  EXPECT_EQ(Call(kAdminKey, "GET", "/v1/balance?tenant_id=" + tenant)["held"], "0.01");
  // h1 used 100 of its 600 tokens: the other 500 come back, so 600 fit again.
  Call(kAdminKey, "POST", "/admin/holds/h1/settle",
       {{"usage", {{{"key", "h1:1"}, {"tenant_id", tenant}, {"model", "m"}, {"input_tokens", 60}, {"output_tokens", 40}}}}},
       &status);
  ASSERT_EQ(status, 200);
  json again = hold("h3", 600);
  EXPECT_EQ(status, 201) << again.dump();
  for (const auto& [limits, param] : std::vector<std::pair<json, std::string>>{
           {json{{"key_id", "key_x"}, {"rpm", 1}, {"tpm", 1}}, "limits.tokens"},
           {json{{"key_id", "key_x"}, {"rpm", -1}, {"tpm", 1}, {"tokens", 1}}, "limits.rpm"},
           {json{{"key_id", "key x"}, {"rpm", 1}, {"tpm", 1}, {"tokens", 1}}, "limits.key_id"},
           {json{{"key_id", "key_x"}, {"rpm", 1}, {"tpm", 1}, {"tokens", 1}, {"other", 1}}, "limits.other"},
           {json("no"), "limits"}}) {
    json e = Call(kAdminKey, "POST", "/admin/holds",
                  {{"id", "h9"}, {"tenant_id", tenant}, {"amount", "0.01"}, {"limits", limits}}, &status);
    EXPECT_EQ(status, 400) << limits.dump();
    EXPECT_EQ(e["error"]["param"], param) << e.dump();
  }
}

// Token usage reported over loopback at full speed, the server killed (SIGKILL) at 10 random
// points: after each restart every acknowledged event is there, once.
TEST_F(ServeTest, KillNineDuringUsageIngestionLosesNothingAcknowledged) {
  StartServer("spot-all");
  std::string tenant;
  NewTenantKey(server_, "acme", &tenant);
  std::mt19937_64 rng(11);
  std::vector<json> acked_batches;
  int64_t acked_events = 0, acked_micros = 0, maybe_micros = 0;
  double busy_s = 0;
  int next = 0;
  auto batch = [&](int n) {
    json events = json::array();
    for (int i = 0; i < n; ++i, ++next) {
      events.push_back({{"key", fmt::format("req_{}/0", next)}, {"tenant_id", tenant}, {"model", "llama-3-8b"},
                        {"input_tokens", 100 + next % 900}, {"output_tokens", 10 + next % 300}});
    }
    return json{{"events", events}};
  };
  auto cost = [](const json& b) {
    int64_t m = 0;
    for (const json& e : b["events"]) {
      m += e["input_tokens"].get<int64_t>() * 200'000 / 1'000'000 + e["output_tokens"].get<int64_t>() * 800'000 / 1'000'000;
    }
    return m;
  };
  for (int round = 0; round < 10; ++round) {
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::vector<std::thread> senders;
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < 2; ++s) {
      senders.emplace_back([&] {
        auto c = server_.Client(kAdminKey);
        while (!stop) {
          json b;
          {
            std::lock_guard<std::mutex> l(mu);
            b = batch(500);
          }
          auto r = c.Request("POST", "/admin/usage", b.dump(), Duration::Seconds(10));
          std::lock_guard<std::mutex> l(mu);
          if (r.ok() && r->status == 200) {
            acked_batches.push_back(b);
            acked_events += 500;
            acked_micros += cost(b);
          } else {
            maybe_micros += cost(b);  // in flight at the kill: may or may not have committed
            return;
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 600));
    server_.Kill9();
    stop = true;
    for (auto& t : senders) t.join();
    busy_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    server_.Start(config_);
  }
  std::printf("ingested %lld acknowledged events in %.2f s of load (%.0f events/s, killed 10 times)\n",
              static_cast<long long>(acked_events), busy_s, static_cast<double>(acked_events) / busy_s);
  ASSERT_GT(acked_events, 0);
  // Every acknowledged event is stored: sending them all again adds nothing.
  auto c = server_.Client(kAdminKey);
  for (const json& b : acked_batches) {
    auto r = c.Request("POST", "/admin/usage", b.dump());
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->status, 200) << r->body;
    ASSERT_EQ(Json(*r)["new_records"].get<int64_t>(), 0) << "an acknowledged event was missing";
  }
  // And once: the invoice holds the acknowledged events' cost, plus at most those in flight.
  const std::string period = Call(kAdminKey, "GET", "/v1/usage?tenant_id=" + tenant + "&period=" +
                                                    MonthUtc(T(Call(kAdminKey, "GET", "/admin/fleet")["now"])))["period"];
  json inv = Call(kAdminKey, "GET", "/v1/invoices/" + period + "?tenant_id=" + tenant);
  const int64_t total = inv["total_micros"];
  EXPECT_GE(total, acked_micros);
  EXPECT_LE(total, acked_micros + maybe_micros);
  ASSERT_EQ(inv["items"].size(), 2u) << inv.dump();
  EXPECT_EQ(inv["items"][0]["model"], "llama-3-8b");
  EXPECT_EQ(inv["items"][0]["kind"], "input_tokens");
}

TEST_F(ServeTest, TenantsAreIsolatedAndKeysChecked) {
  StartServer("spot-all");
  std::string a = NewTenantKey(server_, "a");
  std::string b = NewTenantKey(server_, "b");
  json lease = CreateSpot(a, 2, "1.00");
  std::string id = lease["id"];
  int status = 0;
  json e = Call(b, "GET", "/v1/leases/" + id, nullptr, &status);
  EXPECT_EQ(status, 404);
  EXPECT_EQ(e["error"]["type"], "not_found_error");
  Call(b, "DELETE", "/v1/leases/" + id, nullptr, &status);
  EXPECT_EQ(status, 404);
  auto cb = server_.Client(b);
  Status st = cb.Stream("/v1/leases/" + id + "/events", [](const cli::SseEvent&) { return false; });
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no lease"), std::string::npos) << st.ToString();
  json list = Call(b, "GET", "/v1/leases");
  EXPECT_TRUE(list["data"].empty());
  EXPECT_EQ(Call(a, "GET", "/v1/leases")["data"].size(), 1u);
  EXPECT_EQ(Call(a, "GET", "/v1/leases/" + id)["state"], "active") << "B's DELETE changed nothing";
  Call("", "GET", "/v1/leases", nullptr, &status);
  EXPECT_EQ(status, 401);
  Call("ll_wrong", "GET", "/v1/leases", nullptr, &status);
  EXPECT_EQ(status, 401);
  // Pages: newest first, `after` continues; another tenant's lease is no cursor.
  std::string id2 = CreateSpot(a, 1, "1.00")["id"], id3 = CreateSpot(a, 1, "1.00")["id"];
  json page = Call(a, "GET", "/v1/leases?limit=2");
  ASSERT_EQ(page["data"].size(), 2u);
  EXPECT_EQ(page["data"][0]["id"], id3);
  EXPECT_EQ(page["data"][1]["id"], id2);
  EXPECT_TRUE(page["has_more"].get<bool>());
  page = Call(a, "GET", "/v1/leases?limit=2&after=" + id2);
  ASSERT_EQ(page["data"].size(), 1u);
  EXPECT_EQ(page["data"][0]["id"], id);
  EXPECT_FALSE(page["has_more"].get<bool>());
  Call(b, "GET", "/v1/leases?after=" + id, nullptr, &status);
  EXPECT_EQ(status, 400);
  Call(a, "GET", "/v1/leases?limit=0", nullptr, &status);
  EXPECT_EQ(status, 400);
  json forbidden = Call(a, "GET", "/admin/fleet", nullptr, &status);
  EXPECT_EQ(status, 403);
  EXPECT_EQ(forbidden["error"]["type"], "permission_error");
  Call(a, "POST", "/admin/tenants", {{"name", "x"}}, &status);
  EXPECT_EQ(status, 403);
}

TEST_F(ServeTest, BadInputGetsAClearErrorAndChangesNothing) {
  StartServer("spot-all");
  std::string key = NewTenantKey(server_, "acme");
  auto c = server_.Client(key);
  struct Case {
    std::string body;
    std::string code;
    std::string param;
  };
  const Case cases[] = {
      {"{not json", "invalid_json", ""},
      {"[1,2]", "invalid_type", ""},
      {R"({"gpus": "8", "max_price_per_gpu_hour": "1"})", "invalid_type", "gpus"},
      {R"({"gpus": 0, "max_price_per_gpu_hour": "1"})", "invalid_value", "gpus"},
      {R"({"gpus": -3, "max_price_per_gpu_hour": "1"})", "invalid_value", "gpus"},
      {R"({"gpus": 1000000000000, "max_price_per_gpu_hour": "1"})", "invalid_value", "gpus"},
      {R"({"gpus": 8.5, "max_price_per_gpu_hour": "1"})", "invalid_type", "gpus"},
      {R"({"gpus": 8})", "missing_field", "max_price_per_gpu_hour"},
      {R"({"gpus": 8, "max_price_per_gpu_hour": "abc"})", "invalid_value", "max_price_per_gpu_hour"},
      {R"({"gpus": 8, "max_price_per_gpu_hour": -1})", "invalid_value", "max_price_per_gpu_hour"},
      {R"({"kind": "forever", "gpus": 8})", "invalid_value", "kind"},
      {R"({"kind": "reserved", "gpus": 8})", "missing_field", "duration_s"},
      {R"({"gpus": 8, "max_price_per_gpu_hour": "1", "colour": "red"})", "invalid_value", "colour"},
      {R"({"gpus": 8, "max_price_per_gpu_hour": "1", "pool": "nope"})", "invalid_value", "pool"},
  };
  for (const Case& k : cases) {
    auto r = c.Request("POST", "/v1/leases", k.body);
    ASSERT_TRUE(r.ok());
    json j = Json(*r);
    EXPECT_EQ(r->status, 400) << k.body << " → " << r->body;
    EXPECT_EQ(j["error"]["code"], k.code) << k.body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    if (!k.param.empty()) {
      EXPECT_EQ(j["error"]["param"], k.param) << k.body;
    }
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  }
  int status = 0;
  Call(key, "GET", "/v1/leases/lease_999999", nullptr, &status);
  EXPECT_EQ(status, 404);
  Call(key, "PATCH", "/v1/leases", nullptr, &status);
  EXPECT_EQ(status, 405);
  Call(key, "GET", "/v1/nothing", nullptr, &status);
  EXPECT_EQ(status, 404);
  Call(key, "GET", "/v1/quotes?gpus=0", nullptr, &status);
  EXPECT_EQ(status, 400);
  // Over 1 MiB.
  auto big = c.Request("POST", "/v1/leases", std::string((1 << 20) + 10, ' '));
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(Json(*big)["error"]["code"], "body_too_large");
  // Nothing was created by any of it.
  EXPECT_TRUE(Call(key, "GET", "/v1/leases")["data"].empty());
  json fleet = Call(kAdminKey, "GET", "/admin/fleet");
  EXPECT_EQ(fleet["pools"][0]["spot"], 0);
}

// A client that sends half a request and stalls is cut off after the request timeout (1 s).
TEST_F(ServeTest, SlowlorisConnectionsAreClosed) {
  StartServer("spot-all");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  std::string port = server_.address().substr(server_.address().find(':') + 1);
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  ASSERT_EQ(write(fd, partial.data(), partial.size()), static_cast<ssize_t>(partial.size()));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto t0 = std::chrono::steady_clock::now();
  char buf[256];
  ssize_t n = read(fd, buf, sizeof buf);  // EOF when the server closes
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(n, 0) << "the server closes a stalled connection";
  EXPECT_LT(waited, std::chrono::seconds(5));
  close(fd);
  // The server still answers.
  int status = 0;
  Call("", "GET", "/healthz", nullptr, &status);
  EXPECT_EQ(status, 200);
}

TEST_F(ServeTest, StateSurvivesARestartExactly) {
  StartServer("spot-all");
  std::string key = NewTenantKey(server_, "acme");
  json a = CreateSpot(key, 8, "2.00");
  json b = CreateSpot(key, 3, "1.50");
  Call(key, "DELETE", "/v1/leases/" + b["id"].get<std::string>());
  json fleet_before = Call(kAdminKey, "GET", "/admin/fleet");
  ASSERT_EQ(server_.Stop(), 0);
  server_.Start(config_);
  json got = Call(key, "GET", "/v1/leases/" + a["id"].get<std::string>());
  EXPECT_EQ(got["state"], "active");
  EXPECT_EQ(got["nodes"], a["nodes"]) << "the same GPUs";
  EXPECT_EQ(Call(key, "GET", "/v1/leases/" + b["id"].get<std::string>())["state"], "released");
  json fleet_after = Call(kAdminKey, "GET", "/admin/fleet");
  EXPECT_EQ(fleet_after["nodes"], fleet_before["nodes"]);
  EXPECT_EQ(fleet_after["pools"][0]["spot"], 8);
}

// kill -9 at random points of a lease workload: after each restart every acknowledged
// operation is there and every lease is in a legal state.
TEST_F(ServeTest, KillNineLosesNoAcknowledgedWrite) {
  StartServer("spot-all");
  std::string key = NewTenantKey(server_, "acme");
  std::mt19937_64 rng(7);
  std::map<std::string, std::string> acked;  // lease id → state we were told (active/released)
  const std::set<std::string> legal = {"active", "noticed", "released", "reclaimed", "ended"};
  for (int round = 0; round < 20; ++round) {
    // A burst of operations; the kill lands after a random number of them, sometimes while
    // one is in flight (sent from another thread).
    int ops = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < ops; ++i) {
      int status = 0;
      if (acked.empty() || rng() % 3 != 0) {
        json l = Call(key, "POST", "/v1/leases", {{"gpus", 1 + static_cast<int>(rng() % 4)}, {"max_price_per_gpu_hour", "1.00"}}, &status);
        if (status == 201) acked[l["id"]] = "active";
      } else {
        auto it = acked.begin();
        std::advance(it, static_cast<long>(rng() % acked.size()));
        json l = Call(key, "DELETE", "/v1/leases/" + it->first, nullptr, &status);
        if (status == 200) it->second = l["state"];
      }
    }
    std::thread inflight([&] {
      auto c = server_.Client(key);
      (void)c.Request("POST", "/v1/leases", json{{"gpus", 1}, {"max_price_per_gpu_hour", "1.00"}}.dump(),
                      Duration::Seconds(5));
    });
    if (rng() % 2) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    server_.Kill9();
    inflight.join();
    server_.Start(config_);
    json list = Call(key, "GET", "/v1/leases?limit=1000");
    std::map<std::string, std::string> now;
    for (const json& l : list["data"]) {
      now[l["id"]] = l["state"];
      EXPECT_TRUE(legal.contains(l["state"].get<std::string>())) << l.dump();
    }
    for (auto& [id, state] : acked) {
      ASSERT_TRUE(now.contains(id)) << "round " << round << ": acknowledged lease " << id << " lost";
      if (state == "released") {
        EXPECT_EQ(now[id], "released") << id;
      }
    }
    // The fleet adds up: live leases hold exactly what the fleet says is sold.
    int live = 0;
    for (const json& l : list["data"]) {
      if (l["state"] == "active" || l["state"] == "noticed") live += l["gpus"].get<int>();
    }
    json fleet = Call(kAdminKey, "GET", "/admin/fleet");
    EXPECT_EQ(fleet["pools"][0]["spot"].get<int>(), live);
    // Adopt what survived (an in-flight create may or may not have been acknowledged).
    for (auto& [id, state] : now) {
      if (!acked.contains(id)) acked[id] = state;
    }
  }
}

}  // namespace
}  // namespace ll::testing
