// libFuzzer target: every route's request parsing and validation, end to end below the
// transport. Each input is one request, routed (api::Route) into a ControlPlane over a real
// SQLite store, exactly as `landlord serve` does after Beast has framed it; a model API route
// (/v1/chat/completions, /v1/completions, /v1/embeddings) goes to the gateway's parser
// (gateway::ParseApiCall), which is all the gateway does with a body before it is admitted.
//
// Input (text, so the seeds and the dictionary read naturally):
//   line 1: WHO METHOD TARGET [+SECONDS]
//     WHO: `admin`, `a`, `b` (two tenants), `none`; anything else is sent as the raw
//     Authorization header value. +SECONDS moves the clock first (0..86400).
//   the rest: the body.
//   "ten_A" / "ten_B" anywhere stand for the two tenants' ids (which are random).
//
// Properties checked on every input (a failure aborts, which libFuzzer reports):
//   - nothing throws or crashes, the reply serialises (ReplyText) whatever bytes came in;
//   - an error reply (status ≥ 400) commits nothing to the store: bad input changes nothing;
//   - an error body is OpenAI-style: {"error": {"message", "type", "code", "param"}};
//   - every 256 inputs the control plane is rebuilt from the store and must answer the
//     owner's lease list and fleet map byte for byte as the live one does.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "api/config.h"
#include "api/control_plane.h"
#include "api/routes.h"
#include "core/clock.h"
#include "gateway/api_call.h"
#include "sim/trace.h"
#include "store/fault_store.h"
#include "store/store.h"

namespace ll::api {
namespace {

constexpr const char* kAdminKey = "ll_fuzz_admin_key_0123456789abcdef";

#define FUZZ_CHECK(cond, ...)                                                 \
  do {                                                                        \
    if (!(cond)) {                                                            \
      std::fprintf(stderr, "fuzz property failed: %s: %s\n", #cond,          \
                   fmt::format(__VA_ARGS__).c_str());                         \
      std::abort();                                                           \
    }                                                                         \
  } while (0)

struct World {
  std::string dir;
  ServeConfig config;
  std::unique_ptr<sim::Trace> trace;
  // No fault is ever armed: its commit counter shows that an error reply changed nothing.
  std::unique_ptr<store::FaultStore> store;
  ManualClock wall{Time{1'700'000'000'000}};
  std::unique_ptr<ControlPlane> cp;
  std::string key_a, key_b, tenant_a, tenant_b;
  int64_t inputs = 0;
  int64_t leases = 0;

  ~World() {
    cp.reset();
    store.reset();
    std::string cmd = "rm -rf '" + dir + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir.c_str());
  }
};

std::unique_ptr<ControlPlane> OpenCp(World& w) {
  auto cp = ControlPlane::Open(w.config, *w.trace, w.store.get(), &w.wall, kAdminKey);
  FUZZ_CHECK(cp.ok(), "open: {}", cp.status().message());
  return std::move(*cp);
}

// Creates a tenant and a key; returns the key, and the tenant's id in *id.
std::string NewTenant(ControlPlane& cp, const std::string& name, std::string* id) {
  Reply t = cp.CreateTenant({{"name", name}});
  FUZZ_CHECK(t.status == 201, "tenant: {}", ReplyText(t));
  *id = t.body["id"].get<std::string>();
  Reply k = cp.CreateKey({{"tenant_id", *id}});
  FUZZ_CHECK(k.status == 201, "key: {}", ReplyText(k));
  return k.body["key"].get<std::string>();
}

// "ten_A" and "ten_B" in a target or body stand for the two tenants' real (random) ids.
std::string WithTenantIds(std::string_view text, const World& w);

// A 32-GPU fleet whose owner runs one 8-GPU job for 35 days, served from day 15 (as the
// integration tests): spot and reserved leases both have room, reclaims happen on demand.
std::unique_ptr<World> NewWorld() {
  auto w = std::make_unique<World>();
  const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  w->dir = fmt::format("{}/landlord_fuzz_XXXXXX", base);
  FUZZ_CHECK(mkdtemp(w->dir.data()) != nullptr, "mkdtemp {}", w->dir);
  std::ofstream(w->dir + "/owner.csv") << "submit_s,gpus,duration_s\n0,8,3024000\n";
  w->config.nodes = 4;
  w->config.gpus_per_node = 8;
  w->config.history = Duration::Hours(360);
  w->config.reserved_min_history = Duration::Hours(24);
  w->config.notice = Duration::Seconds(20);
  w->config.speed = 1;
  sim::ReadOptions ro;
  ro.fleet.nodes = 4;
  ro.fleet.gpus_per_node = 8;
  auto trace = sim::ReadTrace("csv:" + w->dir + "/owner.csv", ro);
  FUZZ_CHECK(trace.ok(), "trace: {}", trace.status().message());
  w->trace = std::make_unique<sim::Trace>(std::move(*trace));
  auto s = store::OpenSqliteStore(w->dir + "/landlord.db");
  FUZZ_CHECK(s.ok(), "store: {}", s.status().message());
  w->store = std::make_unique<store::FaultStore>(std::move(*s));
  w->cp = OpenCp(*w);
  w->key_a = NewTenant(*w->cp, "a", &w->tenant_a);
  w->key_b = NewTenant(*w->cp, "b", &w->tenant_b);
  return w;
}

// The restart property: a control plane rebuilt from the store answers as the live one.
void CheckRestart(World& w) {
  Principal owner{.admin = true, .tenant_id = ""};
  std::string leases = ReplyText(w.cp->ListLeases(owner, 1000));
  std::string fleet = ReplyText(w.cp->Fleet());
  w.cp.reset();
  w.cp = OpenCp(w);
  std::string leases2 = ReplyText(w.cp->ListLeases(owner, 1000));
  std::string fleet2 = ReplyText(w.cp->Fleet());
  FUZZ_CHECK(leases == leases2, "leases differ after restart:\n{}\n{}", leases, leases2);
  FUZZ_CHECK(fleet == fleet2, "fleet differs after restart:\n{}\n{}", fleet, fleet2);
}

std::string WithTenantIds(std::string_view text, const World& w) {
  std::string out(text);
  for (auto [placeholder, id] : {std::pair{"ten_A", &w.tenant_a}, std::pair{"ten_B", &w.tenant_b}}) {
    for (size_t pos = 0; (pos = out.find(placeholder, pos)) != std::string::npos; pos += id->size()) {
      out.replace(pos, 5, *id);
    }
  }
  return out;
}

World& TheWorld() {
  static std::unique_ptr<World> w;
  // A fresh world now and then keeps each input fast (the lease list grows with the run).
  if (w == nullptr || w->leases > 200) w = NewWorld();
  return *w;
}

// The model API's parser: never crashes, and every refusal names its field's code.
bool ModelApi(std::string_view method, std::string_view target, std::string_view body) {
  const std::string_view path = target.substr(0, target.find('?'));
  std::optional<gateway::Endpoint> endpoint;
  for (auto e : {gateway::Endpoint::kChatCompletions, gateway::Endpoint::kCompletions, gateway::Endpoint::kEmbeddings}) {
    if (path == gateway::EndpointPath(e)) endpoint = e;
  }
  if (!endpoint || method != "POST") return false;
  gateway::ParseError error;
  auto call = gateway::ParseApiCall(*endpoint, body, 256, &error);
  if (!call.ok()) {
    FUZZ_CHECK(!error.message.empty() && !error.code.empty(), "a refusal without a message: {}",
               call.status().message());
  } else {
    FUZZ_CHECK(call->EstimatedPromptTokens() >= 0 && call->WorstPromptTokens() >= call->EstimatedPromptTokens(),
               "token estimates {} {}", call->EstimatedPromptTokens(), call->WorstPromptTokens());
  }
  return true;
}

void OneInput(std::string_view in) {
  World& w = TheWorld();
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  std::string_view body = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  auto next = [&line]() {
    size_t sp = line.find(' ');
    std::string_view tok = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    return tok;
  };
  std::string_view who = next(), method = next(), target_in = next(), step = next();
  const std::string target = WithTenantIds(target_in, w);
  const std::string body_text = WithTenantIds(body, w);
  std::string auth;
  if (who == "admin") {
    auth = fmt::format("Bearer {}", kAdminKey);
  } else if (who == "a") {
    auth = "Bearer " + w.key_a;
  } else if (who == "b") {
    auth = "Bearer " + w.key_b;
  } else if (who != "none") {
    auth = std::string(who);
  }
  if (step.size() > 1 && step[0] == '+') {
    int64_t s = 0;
    for (char c : step.substr(1)) s = c >= '0' && c <= '9' ? std::min<int64_t>(s * 10 + (c - '0'), 86400) : s;
    w.wall.Advance(Duration::Seconds(s));
  }

  if (ModelApi(method, target, body_text)) return;
  w.cp->Advance();  // time's own changes are committed before the request is looked at
  const int64_t commits = w.store->commits();
  Routed r = Route(*w.cp, Request{.method = method, .target = target, .authorization = auth, .body = body_text});
  if (r.group_commit) w.cp->FlushPending();  // as the server: the group commit before the answer
  std::string text = ReplyText(r.reply);
  FUZZ_CHECK(r.reply.status >= 200 && r.reply.status < 600, "status {}", r.reply.status);
  if (r.reply.status >= 400) {
    FUZZ_CHECK(w.store->commits() == commits, "an error reply ({}) changed the store: {}", r.reply.status, text);
    const auto& e = r.reply.body["error"];
    FUZZ_CHECK(e.is_object() && e["message"].is_string() && e["type"].is_string() && e["code"].is_string() &&
                   e.contains("param"),
               "not an OpenAI-style error: {}", text);
  }
  if (r.reply.status == 201 && r.route == "POST /v1/leases") ++w.leases;
  if (++w.inputs % 256 == 0) CheckRestart(w);
}

}  // namespace
}  // namespace ll::api

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ll::api::OneInput(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
