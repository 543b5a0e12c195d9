// The dashboard's server side over loopback: its page and assets, the admin-only snapshot and
// fleet map, and the live feed (`GET /admin/stream`), against a real `landlord serve`.
#include <gtest/gtest.h>

#include "api/serve_test_util.h"

namespace ll::testing {
namespace {

using nlohmann::json;

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    server_.Start(TestConfig(dir_, "spot-all"));
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Stop(), 0);
    }
    std::system(("rm -rf " + dir_).c_str());
  }
  cli::HttpResponse Get(const std::string& key, const std::string& target) {
    auto r = server_.Client(key).Request("GET", target, "");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cli::HttpResponse{};
  }

  std::string dir_;
  ServeProcess server_;
};

TEST_F(DashboardTest, ThePageAndItsAssetsAreServedSameOriginOnly) {
  auto page = Get("", "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("/assets/app.js"), std::string::npos);
  EXPECT_EQ(page.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_NE(page.headers["content-security-policy"].find("default-src 'self'"), std::string::npos);
  EXPECT_EQ(page.headers["x-content-type-options"], "nosniff");
  auto js = Get("", "/assets/app.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_GT(js.body.size(), 10'000u);
  EXPECT_EQ(js.headers["content-type"], "text/javascript; charset=utf-8");
  EXPECT_EQ(Get("", "/assets/app.css").status, 200);
  // Nothing else is served from there, and the page holds no data: the API still asks for keys.
  EXPECT_EQ(Get("", "/assets/nope.js").status, 404);
  EXPECT_EQ(Get("", "/assets/../admin/dashboard").status, 404);
  auto post = server_.Client("").Request("POST", "/", "{}");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
}

TEST_F(DashboardTest, SnapshotAndMapAreForTheOwnerOnly) {
  std::string tenant_id;
  const std::string key = NewTenantKey(server_, "acme", &tenant_id);
  for (const char* target : {"/admin/dashboard", "/admin/fleet/map", "/admin/stream"}) {
    EXPECT_EQ(Get("", target).status, 401) << target;
    EXPECT_EQ(Get("wrong-key", target).status, 401) << target;
    EXPECT_EQ(Get(key, target).status, 403) << target;
  }
  auto lease = server_.Client(key).Request("POST", "/v1/leases",
                                           R"({"kind":"spot","gpus":8,"max_price_per_gpu_hour":"5.00"})");
  ASSERT_TRUE(lease.ok());
  ASSERT_EQ(lease->status, 201) << lease->body;
  const std::string id = Json(*lease)["id"];

  json d = Json(Get(kAdminKey, "/admin/dashboard"));
  EXPECT_EQ(d["object"], "dashboard");
  EXPECT_EQ(d["gpus"]["capacity"], 32);
  EXPECT_EQ(d["gpus"]["spot"], 8);
  const json& s = d["series"];
  ASSERT_GE(s["t"].size(), 1u);
  for (const char* k : {"internal", "reserved", "spot", "inference", "idle", "spot_price", "demand", "forecast",
                        "revenue_usd", "revenue_per_gpu_h"}) {
    EXPECT_EQ(s[k].size(), s["t"].size()) << k;
  }
  ASSERT_EQ(d["leases"].size(), 1u);
  EXPECT_EQ(d["leases"][0]["id"], id);
  EXPECT_EQ(d["leases"][0]["tenant_id"], tenant_id);
  ASSERT_EQ(d["tenants"].size(), 1u);
  EXPECT_EQ(d["tenants"][0]["name"], "acme");
  EXPECT_EQ(d["tenants"][0]["live_leases"], 1);
  EXPECT_EQ(d["tenants"][0]["gpus"], 8);
  EXPECT_TRUE(d["report"]["since_start"].contains("revenue_per_gpu_h"));

  // The map: 4 nodes of 8 GPUs; the lease's holder names it and its tenant, and every GPU a
  // node's holders cover is within the node.
  json m = Json(Get(kAdminKey, "/admin/fleet/map"));
  ASSERT_EQ(m["nodes"].size(), 4u);
  int spot = 0;
  for (const json& n : m["nodes"]) {
    EXPECT_EQ(n[2], 8);
    int used = 0;
    for (const json& share : n[3]) {
      const json& h = m["holders"][share[0].get<size_t>()];
      used += share[1].get<int>();
      if (h["class"] == "spot") {
        spot += share[1].get<int>();
        EXPECT_EQ(h["lease"], id);
        EXPECT_EQ(h["tenant_id"], tenant_id);
      }
    }
    EXPECT_LE(used, 8);
  }
  EXPECT_EQ(spot, 8);
}

TEST_F(DashboardTest, TheStreamSendsSnapshotsTheMapAndEveryLeasesEvents) {
  const std::string key = NewTenantKey(server_, "acme");
  std::vector<std::string> seen;
  std::string lease_id;
  auto c = server_.Client(kAdminKey);
  Status st = c.Stream("/admin/stream", [&](const cli::SseEvent& e) {
    seen.push_back(e.event);
    if (e.event == "dashboard") {
      EXPECT_EQ(json::parse(e.data)["object"], "dashboard");
      if (lease_id.empty()) {
        // Once the feed is open, a tenant's lease: its events reach the owner's stream.
        auto lease = server_.Client(key).Request("POST", "/v1/leases",
                                                 R"({"kind":"spot","gpus":8,"max_price_per_gpu_hour":"5.00"})");
        EXPECT_TRUE(lease.ok() && lease->status == 201);
        lease_id = lease.ok() ? std::string(Json(*lease)["id"]) : "?";
      }
    } else if (e.event == "fleet") {
      EXPECT_EQ(json::parse(e.data)["object"], "fleet_map");
    } else {
      EXPECT_EQ(json::parse(e.data)["lease"]["id"], lease_id) << e.event;
      return false;  // a lease event arrived: done
    }
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen[0], "dashboard");
  EXPECT_EQ(seen[1], "fleet");
  EXPECT_EQ(seen.back(), "active");
}

}  // namespace
}  // namespace ll::testing
