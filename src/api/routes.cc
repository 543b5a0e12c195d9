#include "api/routes.h"

#include <charconv>

#include <fmt/format.h>

#include "api/ops_log.h"
#include "core/build_info.h"
#include "core/json_depth.h"
#include "gateway/http_util.h"

namespace ll::api {
namespace {

using nlohmann::json;

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    out.push_back(path.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

std::optional<std::string_view> QueryParam(std::string_view query, std::string_view key) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view kv = query.substr(pos, amp - pos);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == key) return eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1);
    pos = amp + 1;
  }
  return std::nullopt;
}

// A query parameter's integer value in [lo, hi], else nullopt.
std::optional<int64_t> ParseInt(std::string_view text, int64_t lo, int64_t hi) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

Reply MethodNotAllowed(std::string_view method, std::string_view path) {
  return HttpErrorReply(405, "method_not_allowed", fmt::format("`{}` is not allowed on `{}`", method, path));
}

Result<json> ParseBody(std::string_view body) {
  if (body.empty()) return json::object();
  // Before any DOM exists: copying or freeing one recurses once per level.
  if (JsonNestsDeeperThan(body)) {
    return Status::Invalid(fmt::format("the body nests arrays and objects deeper than {} levels", kMaxJsonDepth));
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Invalid("the body is not valid JSON");
  return j;
}

}  // namespace

std::string ReplyText(const Reply& reply) {
  return reply.body.dump(-1, ' ', false, json::error_handler_t::replace);
}


namespace {

// One call being routed: the request, the path's `{…}` segments, the caller (once known) and
// the answer being built.
struct Call {
  ControlPlane& cp;
  const Request& req;
  std::string_view method, path, query;
  std::vector<std::string_view> params;
  std::optional<Principal> who;
  Routed& out;

  std::string Param(size_t i) const { return std::string(params.at(i)); }
  std::string Query(std::string_view key) const { return std::string(QueryParam(query, key).value_or("")); }
  // The body as JSON, or nullopt with the 400 answer set.
  std::optional<json> Body() {
    auto j = ParseBody(req.body);
    if (!j.ok()) {
      out.reply = ErrorReply(StatusCode::kInvalidArgument, "invalid_json", j.status().message());
      return std::nullopt;
    }
    return *j;
  }
  // `?name=` as an integer in [lo, hi] (`fallback` when absent), or nullopt with the 400 set.
  std::optional<int64_t> IntQuery(std::string_view name, int64_t fallback, int64_t lo, int64_t hi) {
    auto text = QueryParam(query, name);
    if (!text) return fallback;
    auto v = ParseInt(*text, lo, hi);
    if (!v) out.reply = ErrorReply(StatusCode::kInvalidArgument, "invalid_value", fmt::format("`{}` must be an integer in [{}, {}]", name, lo, hi), name);
    return v;
  }
  // For the routes that read their query before the method (the answer set for a bad method).
  bool Get() {
    if (method == "GET") return true;
    out.reply = MethodNotAllowed(method, path);
    return false;
  }
};

enum class Access : uint8_t { kPublic, kAdmin, kTenant };

// A route: who may call it, its path (`{…}` matches one segment), the metrics label (empty:
// "<METHOD> <path>"), the methods it answers ("*": the handler checks), the handler, and
// whether its writes are group-committed (Routed::group_commit).
struct RouteSpec {
  Access access;
  std::string_view path;
  std::string_view label;
  std::string_view methods;
  void (*handle)(Call&);
  bool group_commit = false;
};

void HandleMetrics(Call& c) {
  c.out.reply.body = c.cp.Metrics();  // a JSON string: the server writes it as text
  c.out.reply.content_type = "text/plain; version=0.0.4";
}

void HandleSlurm(Call& c) {
  // A slurm job's preemption notice, or a replica job's registration: authenticated by the
  // lease's (replica's) token in the body.
  if (auto b = c.Body()) c.out.reply = c.path.ends_with("/notice") ? c.cp.SlurmNotice(*b) : c.cp.SlurmReplicaUp(*b);
}

void Stream(Call& c, std::string lease_id) {
  c.out.stream = true;
  c.out.lease_id = std::move(lease_id);
  c.out.principal = *c.who;
}

// The metadata service's `spot/instance-action`; `?wait=true` holds the 404 until the notice
// (or `timeout_s`, default 60).
void HandleInstanceAction(Call& c) {
  std::string lease_id;
  c.out.reply = c.cp.MetadataInstanceAction(c.Param(0), &lease_id);
  if (c.out.reply.status != 404 || lease_id.empty() || c.Query("wait") != "true") return;
  auto timeout = c.IntQuery("timeout_s", 60, 1, 3600);
  if (!timeout) return;
  c.out.wait_notice = true;
  c.out.lease_id = lease_id;
  c.out.token = c.Param(0);
  c.out.wait_s = *timeout;
}

void HandleLogs(Call& c) {
  const std::string follow = c.Query("follow");
  if (follow == "true" || follow == "1") {
    c.out.follow_logs = true;
    c.out.lease_id = c.Param(0);
    c.out.principal = *c.who;
    return;
  }
  c.out.reply = c.cp.LeaseLogs(*c.who, c.Param(0));
}

void HandleListKeys(Call& c) {
  auto limit = ParseInt(QueryParam(c.query, "limit").value_or("100"), 1, 1000);
  c.out.reply = limit ? c.cp.ListKeys(c.Query("tenant_id"), static_cast<int>(*limit), c.Query("after"))
                      : ErrorReply(StatusCode::kInvalidArgument, "invalid_value", "`limit` must be an integer in [1, 1000]", "limit");
}

void HandleListLeases(Call& c) {
  if (auto limit = c.IntQuery("limit", 100, 1, 1000)) {
    c.out.reply = c.cp.ListLeases(*c.who, static_cast<int>(*limit), c.Query("after"));
  }
}

void HandleQuotes(Call& c) {
  std::optional<int64_t> gpus;
  if (QueryParam(c.query, "gpus")) {
    gpus = c.IntQuery("gpus", 0, 1, 1024);
    if (!gpus) return;
  }
  if (c.Get()) c.out.reply = c.cp.Quote(*c.who, gpus);
}

void HandlePrices(Call& c) {
  std::optional<Time> from, to;
  for (auto [name, slot] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
    if (auto v = QueryParam(c.query, name)) {
      auto t = ParseUtc(*v);
      if (!t.ok()) {
        c.out.reply = ErrorReply(StatusCode::kInvalidArgument, "invalid_value", fmt::format("`{}`: {}", name, t.status().message()), name);
        return;
      }
      *slot = *t;
    }
  }
  if (c.Get()) c.out.reply = c.cp.Prices(from, to);
}

void HandleUsage(Call& c) {
  auto limit = c.IntQuery("limit", 1000, 1, 10'000);
  if (limit && c.Get()) {
    c.out.reply = c.cp.Usage(*c.who, c.Query("period"), c.Query("tenant_id"), static_cast<int>(*limit), c.Query("after"));
  }
}

void HandleInvoice(Call& c) {
  auto format = QueryParam(c.query, "format").value_or("json");
  if (format != "json" && format != "csv") {
    c.out.reply = ErrorReply(StatusCode::kInvalidArgument, "invalid_value", "`format` must be json or csv", "format");
    return;
  }
  if (c.Get()) c.out.reply = c.cp.Invoice(*c.who, c.Param(0), c.Query("tenant_id"), format == "csv");
}

// Handlers that pass the parsed body on.
template <Reply (ControlPlane::*F)(const json&)>
void WithBody(Call& c) {
  if (auto b = c.Body()) c.out.reply = (c.cp.*F)(*b);
}

// In match order: a literal segment before a `{…}` at the same place.
constexpr RouteSpec kRoutes[] = {
    {Access::kPublic, "/healthz", "GET /healthz", "GET",
     [](Call& c) {
       c.out.reply = c.cp.Health();
       c.out.reply.body["version"] = BuildVersion();
       c.out.reply.body["commit"] = BuildCommit();
     }},
    {Access::kPublic, "/metrics", "GET /metrics", "GET", HandleMetrics},
    {Access::kPublic, "/slurm/notice", "POST /slurm/notice", "POST", HandleSlurm},
    {Access::kPublic, "/slurm/replica", "POST /slurm/replica", "POST", HandleSlurm},
    // The workloads' metadata service: the lease's token in the path is the credential.
    {Access::kPublic, "/metadata/{token}/lease", "GET /metadata/{token}/lease", "GET",
     [](Call& c) { c.out.reply = c.cp.MetadataLease(c.Param(0)); }},
    {Access::kPublic, "/metadata/{token}/latest/meta-data/spot/instance-action",
     "GET /metadata/{token}/spot/instance-action", "GET", HandleInstanceAction},
    // The owner's API.
    {Access::kAdmin, "/admin/holds/{id}/settle", "POST /admin/holds/{id}/settle", "POST",
     [](Call& c) {
       if (auto b = c.Body()) c.out.reply = c.cp.Settle(c.Param(0), *b);
     },
     /*group_commit=*/true},
    {Access::kAdmin, "/admin/slices/{id}", "POST /admin/slices/{id}", "POST",
     [](Call& c) {
       if (auto b = c.Body()) c.out.reply = c.cp.ReportSlice(c.Param(0), *b);
     },
     /*group_commit=*/true},
    {Access::kAdmin, "/admin/slices", "", "GET", [](Call& c) { c.out.reply = c.cp.ListSlices(c.Query("tenant_id")); }},
    {Access::kAdmin, "/admin/keys/verify", "POST /admin/keys/verify", "POST", WithBody<&ControlPlane::VerifyKey>},
    {Access::kAdmin, "/admin/keys/{id}", "", "DELETE", [](Call& c) { c.out.reply = c.cp.RevokeKey(c.Param(0)); }},
    {Access::kAdmin, "/admin/fleet/map", "GET /admin/fleet/map", "GET", [](Call& c) { c.out.reply = c.cp.FleetMap(); }},
    {Access::kAdmin, "/admin/tenants", "", "POST", WithBody<&ControlPlane::CreateTenant>},
    {Access::kAdmin, "/admin/keys", "", "POST,GET",
     [](Call& c) { c.method == "POST" ? WithBody<&ControlPlane::CreateKey>(c) : HandleListKeys(c); }},
    {Access::kAdmin, "/admin/fleet", "", "GET", [](Call& c) { c.out.reply = c.cp.Fleet(); }},
    {Access::kAdmin, "/admin/policy", "", "GET,PUT",
     [](Call& c) { c.method == "PUT" ? WithBody<&ControlPlane::PutPolicy>(c) : void(c.out.reply = c.cp.GetPolicy()); }},
    {Access::kAdmin, "/admin/internal-jobs", "", "POST", WithBody<&ControlPlane::AddInternalJob>},
    {Access::kAdmin, "/admin/timeseries", "", "GET", [](Call& c) { c.out.reply = c.cp.Timeseries(); }},
    {Access::kAdmin, "/admin/dashboard", "", "GET", [](Call& c) { c.out.reply = c.cp.Dashboard(); }},
    // The dashboard's live feed: snapshots and every lease's events (http_server.cc).
    {Access::kAdmin, "/admin/stream", "", "GET", [](Call& c) { Stream(c, "*"); }},
    {Access::kAdmin, "/admin/credits", "", "POST", WithBody<&ControlPlane::Credit>},
    {Access::kAdmin, "/admin/holds", "", "POST", WithBody<&ControlPlane::Reserve>, /*group_commit=*/true},
    {Access::kAdmin, "/admin/usage", "", "POST", WithBody<&ControlPlane::IngestUsage>},
    {Access::kAdmin, "/admin/report", "", "GET", [](Call& c) { c.out.reply = c.cp.Report(c.Query("period")); }},
    // The tenant API (an admin key may read and release any lease too).
    {Access::kTenant, "/v1/leases", "", "POST,GET",
     [](Call& c) {
       if (c.method == "GET") return HandleListLeases(c);
       if (auto b = c.Body()) c.out.reply = c.cp.CreateLease(*c.who, *b);
     }},
    {Access::kTenant, "/v1/leases/{id}", "", "GET,DELETE",
     [](Call& c) {
       c.out.reply = c.method == "GET" ? c.cp.GetLease(*c.who, c.Param(0)) : c.cp.ReleaseLease(*c.who, c.Param(0));
     }},
    {Access::kTenant, "/v1/leases/{id}/events", "GET /v1/leases/{id}/events", "GET", [](Call& c) { Stream(c, c.Param(0)); }},
    {Access::kTenant, "/v1/leases/{id}/logs", "GET /v1/leases/{id}/logs", "GET", HandleLogs},
    {Access::kTenant, "/v1/quotes", "GET /v1/quotes", "*", HandleQuotes},
    {Access::kTenant, "/v1/prices", "GET /v1/prices", "*", HandlePrices},
    {Access::kTenant, "/v1/usage", "GET /v1/usage", "*", HandleUsage},
    {Access::kTenant, "/v1/balance", "GET /v1/balance", "GET",
     [](Call& c) { c.out.reply = c.cp.GetBalance(*c.who, c.Query("tenant_id")); }},
    {Access::kTenant, "/v1/invoices", "GET /v1/invoices", "GET",
     [](Call& c) { c.out.reply = c.cp.Invoices(*c.who, c.Query("tenant_id")); }},
    {Access::kTenant, "/v1/invoices/{period}", "GET /v1/invoices/{period}", "*", HandleInvoice},
};

// Whether `seg` matches a route's path (`pattern`, split); its `{…}` segments go to *params.
bool Matches(const std::vector<std::string_view>& pattern, const std::vector<std::string_view>& seg,
             std::vector<std::string_view>* params) {
  if (pattern.size() != seg.size()) return false;
  params->clear();
  for (size_t i = 0; i < seg.size(); ++i) {
    if (pattern[i].starts_with('{')) {
      params->push_back(seg[i]);
    } else if (pattern[i] != seg[i]) {
      return false;
    }
  }
  return true;
}

bool Allows(std::string_view methods, std::string_view m) {
  if (methods == "*") return true;
  for (size_t pos = 0; pos <= methods.size();) {
    size_t comma = std::min(methods.find(',', pos), methods.size());
    if (methods.substr(pos, comma - pos) == m) return true;
    pos = comma + 1;
  }
  return false;
}

// Runs the first route of `access` that matches; false if none does.
bool Dispatch(Call& c, Access access, const std::vector<std::string_view>& seg) {
  static const std::vector<std::vector<std::string_view>> patterns = [] {
    std::vector<std::vector<std::string_view>> out;
    for (const RouteSpec& r : kRoutes) out.push_back(Segments(r.path));
    return out;
  }();
  for (size_t i = 0; i < std::size(kRoutes); ++i) {
    const RouteSpec& r = kRoutes[i];
    if (r.access != access || !Matches(patterns[i], seg, &c.params)) continue;
    c.out.route = r.label.empty() ? fmt::format("{} {}", gateway::MethodLabel(c.method), r.path) : std::string(r.label);
    if (Allows(r.methods, c.method)) {
      c.out.group_commit = r.group_commit;
      c.cp.DeferCommits(r.group_commit);
      r.handle(c);
      c.cp.DeferCommits(false);
    } else {
      c.out.reply = MethodNotAllowed(c.method, c.path);
    }
    return true;
  }
  return false;
}

// The audit trail (api/ops_log.h): every request that may change state (not a GET), with who
// sent it and what came of it, once it is answered. The gateways' own traffic (holds, usage,
// key checks: many a second, each its own model request's) is left out.
void Audit(const Call& c, const Routed& out) {
  if (c.method == "GET" || c.method == "HEAD" || out.group_commit) return;
  if (c.path == "/admin/usage" || c.path == "/admin/keys/verify") return;
  const std::string principal = !c.who ? "anonymous" : c.who->admin ? "admin" : c.who->tenant_id;
  oplog::Audit(principal, c.method, c.path, out.reply.status, out.reply.body);
}

}  // namespace

Routed Route(ControlPlane& cp, const Request& req) {
  Routed out;
  std::string_view target = req.target;
  size_t q = target.find('?');
  Call c{cp, req, req.method, target.substr(0, q), q == std::string_view::npos ? std::string_view() : target.substr(q + 1),
         {}, std::nullopt, out};
  const auto seg = Segments(c.path);
  auto not_found = [&] {
    out.route = "other";
    out.reply = ErrorReply(StatusCode::kNotFound, "not_found", fmt::format("no route `{}`", c.path));
    return out;
  };
  if (Dispatch(c, Access::kPublic, seg)) return out;
  const bool admin = !seg.empty() && seg[0] == "admin";
  if (!admin && (seg.empty() || seg[0] != "v1")) return not_found();
  c.who = cp.Authenticate(gateway::BearerToken(req.authorization));
  if (!c.who) {
    out.route = "unauthorized";
    out.reply = ErrorReply(StatusCode::kUnauthenticated, "invalid_api_key",
                           req.authorization.empty() ? "missing `Authorization: Bearer <key>`" : "invalid API key");
  } else if (admin && !c.who->admin) {
    out.route = "forbidden";
    out.reply = ErrorReply(StatusCode::kPermissionDenied, "admin_only", "this endpoint needs the admin key");
  } else if (!Dispatch(c, admin ? Access::kAdmin : Access::kTenant, seg)) {
    not_found();
  }
  Audit(c, out);
  return out;
}

}  // namespace ll::api
