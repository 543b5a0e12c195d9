#include "api/routes.h"

#include <charconv>

#include <fmt/format.h>

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
  return ErrorReply(405, "method_not_allowed", fmt::format("`{}` is not allowed on `{}`", method, path));
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


Routed Route(ControlPlane& cp, const Request& req) {
  Routed out;
  std::string_view target = req.target;
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  auto seg = Segments(path);
  const std::string_view m = req.method;

  // Public.
  if (seg.size() == 1 && seg[0] == "healthz") {
    out.route = "GET /healthz";
    out.reply = m == "GET" ? cp.Health() : MethodNotAllowed(m, path);
    return out;
  }
  if (seg.size() == 1 && seg[0] == "metrics") {
    out.route = "GET /metrics";
    if (m != "GET") {
      out.reply = MethodNotAllowed(m, path);
    } else {
      out.reply.body = cp.Metrics();  // a JSON string: the server writes it as text
      out.reply.content_type = "text/plain; version=0.0.4";
    }
    return out;
  }
  if (seg.size() == 2 && seg[0] == "slurm" && (seg[1] == "notice" || seg[1] == "replica")) {
    // A slurm job's preemption notice, or a replica job's registration: authenticated by the
    // lease's (replica's) token in the body.
    out.route = fmt::format("POST /slurm/{}", seg[1]);
    if (m != "POST") {
      out.reply = MethodNotAllowed(m, path);
    } else if (auto j = ParseBody(req.body); !j.ok()) {
      out.reply = ErrorReply(400, "invalid_json", j.status().message());
    } else {
      out.reply = seg[1] == "notice" ? cp.SlurmNotice(*j) : cp.SlurmReplicaUp(*j);
    }
    return out;
  }
  const bool v1 = !seg.empty() && seg[0] == "v1";
  const bool admin = !seg.empty() && seg[0] == "admin";
  if (!v1 && !admin) {
    out.route = "other";
    out.reply = ErrorReply(404, "not_found", fmt::format("no route `{}`", path));
    return out;
  }
  auto who = cp.Authenticate(gateway::BearerToken(req.authorization));
  if (!who) {
    out.route = "unauthorized";
    out.reply = ErrorReply(401, "invalid_api_key",
                           req.authorization.empty() ? "missing `Authorization: Bearer <key>`" : "invalid API key");
    return out;
  }
  auto body = [&]() -> std::optional<json> {
    auto j = ParseBody(req.body);
    if (!j.ok()) {
      out.reply = ErrorReply(400, "invalid_json", j.status().message());
      return std::nullopt;
    }
    return *j;
  };

  if (admin) {
    if (!who->admin) {
      out.route = "forbidden";
      out.reply = ErrorReply(403, "admin_only", "this endpoint needs the admin key");
      return out;
    }
    if (seg.size() == 4 && seg[1] == "holds" && seg[3] == "settle") {
      out.route = "POST /admin/holds/{id}/settle";
      if (m != "POST") {
        out.reply = MethodNotAllowed(m, path);
      } else if (auto b = body()) {
        out.reply = cp.Settle(std::string(seg[2]), *b);
      }
      return out;
    }
    if (seg.size() == 3 && seg[1] == "keys" && seg[2] == "verify") {
      out.route = "POST /admin/keys/verify";
      if (m != "POST") {
        out.reply = MethodNotAllowed(m, path);
      } else if (auto b = body()) {
        out.reply = cp.VerifyKey(*b);
      }
      return out;
    }
    if (seg.size() == 3 && seg[1] == "keys") {
      out.route = fmt::format("{} /admin/keys/{{id}}", gateway::MethodLabel(m));
      out.reply = m == "DELETE" ? cp.RevokeKey(std::string(seg[2])) : MethodNotAllowed(m, path);
      return out;
    }
    if (seg.size() == 3 && seg[1] == "fleet" && seg[2] == "map") {
      out.route = "GET /admin/fleet/map";
      out.reply = m == "GET" ? cp.FleetMap() : MethodNotAllowed(m, path);
      return out;
    }
    std::string_view what = seg.size() == 2 ? seg[1] : "";
    out.route = fmt::format("{} /admin/{}", gateway::MethodLabel(m), what);
    if (what == "tenants" && m == "POST") {
      if (auto b = body()) out.reply = cp.CreateTenant(*b);
    } else if (what == "keys" && m == "POST") {
      if (auto b = body()) out.reply = cp.CreateKey(*b);
    } else if (what == "keys" && m == "GET") {
      auto limit = ParseInt(QueryParam(query, "limit").value_or("100"), 1, 1000);
      out.reply = limit ? cp.ListKeys(std::string(QueryParam(query, "tenant_id").value_or("")), static_cast<int>(*limit),
                                      std::string(QueryParam(query, "after").value_or("")))
                        : ErrorReply(400, "invalid_value", "`limit` must be an integer in [1, 1000]", "limit");
    } else if (what == "fleet" && m == "GET") {
      out.reply = cp.Fleet();
    } else if (what == "policy" && m == "GET") {
      out.reply = cp.GetPolicy();
    } else if (what == "policy" && m == "PUT") {
      if (auto b = body()) out.reply = cp.PutPolicy(*b);
    } else if (what == "internal-jobs" && m == "POST") {
      if (auto b = body()) out.reply = cp.AddInternalJob(*b);
    } else if (what == "timeseries" && m == "GET") {
      out.reply = cp.Timeseries();
    } else if (what == "dashboard" && m == "GET") {
      out.reply = cp.Dashboard();
    } else if (what == "stream" && m == "GET") {
      // The dashboard's live feed: snapshots and every lease's events (http_server.cc).
      out.stream = true;
      out.lease_id = "*";
      out.principal = *who;
    } else if (what == "credits" && m == "POST") {
      if (auto b = body()) out.reply = cp.Credit(*b);
    } else if (what == "holds" && m == "POST") {
      if (auto b = body()) out.reply = cp.Reserve(*b);
    } else if (what == "usage" && m == "POST") {
      if (auto b = body()) out.reply = cp.IngestUsage(*b);
    } else if (what == "report" && m == "GET") {
      out.reply = cp.Report(std::string(QueryParam(query, "period").value_or("")));
    } else if (what == "tenants" || what == "keys" || what == "fleet" || what == "policy" ||
               what == "internal-jobs" || what == "timeseries" || what == "credits" || what == "holds" ||
               what == "usage" || what == "report" || what == "dashboard" || what == "stream") {
      out.reply = MethodNotAllowed(m, path);
    } else {
      out.route = "other";
      out.reply = ErrorReply(404, "not_found", fmt::format("no route `{}`", path));
    }
    return out;
  }

  // Tenant API (an admin key may read and release any lease too).
  if (seg.size() == 2 && seg[1] == "leases") {
    out.route = fmt::format("{} /v1/leases", gateway::MethodLabel(m));
    if (m == "POST") {
      if (auto b = body()) out.reply = cp.CreateLease(*who, *b);
    } else if (m == "GET") {
      int64_t limit = 100;
      if (auto l = QueryParam(query, "limit")) {
        auto v = ParseInt(*l, 1, 1000);
        if (!v) {
          out.reply = ErrorReply(400, "invalid_value", "`limit` must be an integer in [1, 1000]", "limit");
          return out;
        }
        limit = *v;
      }
      out.reply = cp.ListLeases(*who, static_cast<int>(limit), std::string(QueryParam(query, "after").value_or("")));
    } else {
      out.reply = MethodNotAllowed(m, path);
    }
  } else if (seg.size() == 3 && seg[1] == "leases") {
    out.route = fmt::format("{} /v1/leases/{{id}}", gateway::MethodLabel(m));
    std::string id(seg[2]);
    if (m == "GET") {
      out.reply = cp.GetLease(*who, id);
    } else if (m == "DELETE") {
      out.reply = cp.ReleaseLease(*who, id);
    } else {
      out.reply = MethodNotAllowed(m, path);
    }
  } else if (seg.size() == 4 && seg[1] == "leases" && seg[3] == "events") {
    out.route = "GET /v1/leases/{id}/events";
    if (m != "GET") {
      out.reply = MethodNotAllowed(m, path);
    } else {
      out.stream = true;
      out.lease_id = std::string(seg[2]);
      out.principal = *who;
    }
  } else if (seg.size() == 2 && seg[1] == "quotes") {
    out.route = "GET /v1/quotes";
    std::optional<int64_t> gpus;
    if (auto g = QueryParam(query, "gpus")) {
      gpus = ParseInt(*g, 1, 1024);
      if (!gpus) {
        out.reply = ErrorReply(400, "invalid_value", "`gpus` must be an integer in [1, 1024]", "gpus");
        return out;
      }
    }
    out.reply = m == "GET" ? cp.Quote(*who, gpus) : MethodNotAllowed(m, path);
  } else if (seg.size() == 2 && seg[1] == "prices") {
    out.route = "GET /v1/prices";
    std::optional<Time> from, to;
    for (auto [name, slot] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
      if (auto v = QueryParam(query, name)) {
        auto t = ParseUtc(*v);
        if (!t.ok()) {
          out.reply = ErrorReply(400, "invalid_value", fmt::format("`{}`: {}", name, t.status().message()), name);
          return out;
        }
        *slot = *t;
      }
    }
    out.reply = m == "GET" ? cp.Prices(from, to) : MethodNotAllowed(m, path);
  } else if (seg.size() == 2 && seg[1] == "usage") {
    out.route = "GET /v1/usage";
    int64_t limit = 1000;
    if (auto l = QueryParam(query, "limit")) {
      auto v = ParseInt(*l, 1, 10'000);
      if (!v) {
        out.reply = ErrorReply(400, "invalid_value", "`limit` must be an integer in [1, 10000]", "limit");
        return out;
      }
      limit = *v;
    }
    out.reply = m == "GET" ? cp.Usage(*who, std::string(QueryParam(query, "period").value_or("")),
                                      std::string(QueryParam(query, "tenant_id").value_or("")), static_cast<int>(limit),
                                      std::string(QueryParam(query, "after").value_or("")))
                           : MethodNotAllowed(m, path);
  } else if (seg.size() == 2 && seg[1] == "balance") {
    out.route = "GET /v1/balance";
    out.reply = m == "GET" ? cp.GetBalance(*who, std::string(QueryParam(query, "tenant_id").value_or("")))
                           : MethodNotAllowed(m, path);
  } else if (seg.size() == 2 && seg[1] == "invoices") {
    out.route = "GET /v1/invoices";
    out.reply = m == "GET" ? cp.Invoices(*who, std::string(QueryParam(query, "tenant_id").value_or("")))
                           : MethodNotAllowed(m, path);
  } else if (seg.size() == 3 && seg[1] == "invoices") {
    out.route = "GET /v1/invoices/{period}";
    auto format = QueryParam(query, "format").value_or("json");
    if (format != "json" && format != "csv") {
      out.reply = ErrorReply(400, "invalid_value", "`format` must be json or csv", "format");
      return out;
    }
    out.reply = m == "GET" ? cp.Invoice(*who, std::string(seg[2]), std::string(QueryParam(query, "tenant_id").value_or("")),
                                        format == "csv")
                           : MethodNotAllowed(m, path);
  } else {
    out.route = "other";
    out.reply = ErrorReply(404, "not_found", fmt::format("no route `{}`", path));
  }
  return out;
}

}  // namespace ll::api
