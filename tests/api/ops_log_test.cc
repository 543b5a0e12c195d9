// The operational log (api/ops_log.h, issue 21): a real `landlord serve` logging JSON lines to
// a file; the test reads back a lease's life (created, noticed, reclaimed) and a key's (created,
// revoked) with their ids, and finds no key and no prompt in any line.
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/serve_test_util.h"

namespace ll::testing {
namespace {

using json = nlohmann::json;

json Send(const ServeProcess& s, const std::string& key, const std::string& method, const std::string& path,
          const json& body, int expect) {
  auto r = s.Client(key).Request(method, path, body.is_null() ? "" : body.dump());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return json();
  EXPECT_EQ(r->status, expect) << method << " " << path << ": " << r->body;
  return Json(*r);
}

// The first log line (a JSON object) with every field of `want`; null if none.
json Find(const std::vector<json>& lines, const json& want) {
  for (const json& l : lines) {
    bool all = true;
    for (const auto& [k, v] : want.items()) all = all && l.contains(k) && l[k] == v;
    if (all) return l;
  }
  return json();
}

TEST(OpsLog, LeaseAndKeyLivesWithTheirIdsAndNoSecretOrPrompt) {
  const std::string dir = TempDir();
  // The default model (two simulated replicas) so that a prompt goes through the gateway too.
  const std::string config = TestConfig(dir, "spot-all", "[gateway]\nenabled = true");
  const std::string log_path = dir + "/serve.log";
  ServeProcess s;
  s.StartLogged(config, "--log-format json", log_path);

  json tenant = Send(s, kAdminKey, "POST", "/admin/tenants", {{"name", "acme"}}, 201);
  const std::string tenant_id = tenant["id"];
  Send(s, kAdminKey, "POST", "/admin/credits", {{"tenant_id", tenant_id}, {"amount", "10.00"}}, 200);
  json k = Send(s, kAdminKey, "POST", "/admin/keys", {{"tenant_id", tenant_id}}, 201);
  const std::string key_id = k["id"], key = k["key"];
  const std::string prompt = "a prompt that must stay out of the log 7f3c";
  Send(s, key, "POST", "/v1/chat/completions",
       {{"model", "landlord-sim-8b"}, {"max_tokens", 4}, {"messages", {{{"role", "user"}, {"content", prompt}}}}}, 200);
  json lease = Send(s, key, "POST", "/v1/leases", {{"kind", "spot"}, {"gpus", 8}, {"max_price_per_gpu_hour", "2.00"}}, 201);
  const std::string lease_id = lease["id"];
  Send(s, kAdminKey, "POST", "/admin/internal-jobs", {{"gpus", 32}, {"duration_s", 3600}}, 201);
  std::vector<json> events = WatchLease(s, key, lease_id);  // until it is reclaimed
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["_event"], "reclaimed");
  Send(s, kAdminKey, "DELETE", "/admin/keys/" + key_id, nullptr, 200);
  EXPECT_EQ(s.Stop(), 0);

  std::vector<json> lines;
  std::ifstream in(log_path);
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not a JSON line: " << line;
    EXPECT_TRUE(j.contains("time") && j.contains("level") && j.contains("event")) << line;
    EXPECT_EQ(line.find(key), std::string::npos) << "a tenant key in the log: " << line;
    EXPECT_EQ(line.find(kAdminKey), std::string::npos) << "the admin key in the log: " << line;
    EXPECT_EQ(line.find("7f3c"), std::string::npos) << "a prompt in the log: " << line;
    lines.push_back(std::move(j));
  }
  // The lease: created (the audit of its POST), noticed (with the reason), reclaimed.
  EXPECT_FALSE(Find(lines, {{"event", "audit"}, {"method", "POST"}, {"path", "/v1/leases"}, {"status", "201"},
                            {"principal", tenant_id}, {"id", lease_id}})
                   .is_null());
  EXPECT_FALSE(Find(lines, {{"event", "lease.active"}, {"lease", lease_id}, {"tenant", tenant_id}}).is_null());
  EXPECT_FALSE(Find(lines, {{"event", "lease.reclaim_notice"}, {"lease", lease_id}, {"tenant", tenant_id},
                            {"reason", "internal_demand"}})
                   .is_null());
  EXPECT_FALSE(Find(lines, {{"event", "lease.reclaimed"}, {"lease", lease_id}, {"tenant", tenant_id}}).is_null());
  // The key: created and revoked by the admin; the tenant and the credit too.
  EXPECT_FALSE(Find(lines, {{"event", "audit"}, {"principal", "admin"}, {"method", "POST"}, {"path", "/admin/keys"},
                            {"id", key_id}, {"tenant", tenant_id}})
                   .is_null());
  EXPECT_FALSE(Find(lines, {{"event", "audit"}, {"principal", "admin"}, {"method", "DELETE"},
                            {"path", "/admin/keys/" + key_id}, {"state", "revoked"}})
                   .is_null());
  EXPECT_FALSE(Find(lines, {{"event", "audit"}, {"path", "/admin/tenants"}, {"id", tenant_id}}).is_null());
  EXPECT_FALSE(Find(lines, {{"event", "audit"}, {"path", "/admin/credits"}, {"tenant", tenant_id}}).is_null());
  EXPECT_FALSE(Find(lines, {{"event", "serve.started"}}).is_null());
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace ll::testing
