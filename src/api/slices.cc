// Standalone gateways' slices over the admin API (docs/scale-out.md, docs/api.md):
// `POST /admin/slices/{id}` (a gateway's report: usage, units, what it asks; group-committed
// like the holds) and `GET /admin/slices` (the open ones, with their leases' expiry).
#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/fields.h"

namespace ll::api {

using nlohmann::json;

namespace {

constexpr size_t kMaxSliceUsage = 20'000;  // requests' usage in one report

json UnitsJson(int64_t micros, int64_t requests, int64_t tokens) {
  return {{"micros", micros}, {"requests", requests}, {"tokens", tokens}};
}

// {"micros", "requests", "tokens"} (each optional, ≥ 0) of field `name`.
gateway::SliceUnits ParseUnits(const json& body, const char* name, Fields& f) {
  gateway::SliceUnits u;
  if (!f.ok() || !body.contains(name)) return u;
  Fields uf(body[name], std::string(name) + ".");
  uf.Only({"micros", "requests", "tokens"});
  u.micros = uf.Int("micros", 0, kMaxAmount.micros, false).value_or(0);
  u.requests = uf.Int("requests", 0, 1'000'000'000, false).value_or(0);
  u.tokens = uf.Int("tokens", 0, 1'000'000'000'000, false).value_or(0);
  if (!uf.ok()) f.Fail(uf.error());
  return u;
}

}  // namespace

json ControlPlane::SliceJson(const store::HoldRecord& h) const {
  const bool open = h.charged_micros < 0;
  json j = {{"object", "slice"},
            {"id", h.id},
            {"tenant_id", h.tenant_id},
            {"key_id", h.key_id},
            {"seq", h.seq},
            {"state", open ? "open" : h.expired ? "expired" : "closed"},
            {"held", UnitsJson(open ? h.amount_micros : 0, h.requests, h.tokens)},
            {"spent_micros", h.spent_micros},
            {"expires_at", FormatUtc(h.expires)},
            {"expires_at_ms", h.expires.ms},
            {"ttl_ms", config_.gateway.slices.ttl.ms}};
  return j;
}

// Usage entries of a report: [key, model, input_tokens, output_tokens], each the tenant's.
std::optional<std::vector<store::UsageRecord>> ControlPlane::SliceUsage(const json& usage, const std::string& tenant,
                                                                      Reply* error) const {
  std::vector<store::UsageRecord> out;
  if (!usage.is_array() || usage.size() > kMaxSliceUsage) {
    *error = ErrorReply(StatusCode::kInvalidArgument, "invalid_value",
                        fmt::format("`usage` must be an array of at most {}", kMaxSliceUsage), "usage");
    return std::nullopt;
  }
  out.reserve(usage.size() * 2);
  const Time now = Now();
  for (size_t i = 0; i < usage.size(); ++i) {
    const json& e = usage[i];
    const bool ok = e.is_array() && e.size() == 4 && e[0].is_string() && e[1].is_string() &&
                    e[2].is_number_unsigned() && e[3].is_number_unsigned() && e[2].get<uint64_t>() <= 1'000'000'000 &&
                    e[3].get<uint64_t>() <= 1'000'000'000;
    const std::string* key = ok ? e[0].get_ptr<const std::string*>() : nullptr;
    const std::string* model = ok ? e[1].get_ptr<const std::string*>() : nullptr;
    if (!ok || !ValidClientId(*key, 200) || model->empty() || model->size() > 100) {
      const std::string field = fmt::format("usage[{}]", i);
      *error = ErrorReply(StatusCode::kInvalidArgument, "invalid_value",
                          fmt::format("`{}` must be [key (1..200 of [A-Za-z0-9_.:/-]), model (1..100 bytes), "
                                      "input_tokens, output_tokens (0..1e9)]",
                                      field),
                          field);
      return std::nullopt;
    }
    for (auto& r : accounts_.TokenRecords(*key, tenant, *model, e[2].get<int64_t>(), e[3].get<int64_t>(), now)) {
      out.push_back(std::move(r));
    }
  }
  return out;
}

Reply ControlPlane::ReportSlice(const std::string& id, const json& body) {
  Fields f(body);
  f.Only({"seq", "tenant_id", "key_id", "rpm", "tpm", "usage", "used", "tokens_back", "requests_back", "give_back",
          "want", "min", "close"});
  control::Accounts::SliceReport r;
  r.seq = f.Int("seq", 1, INT64_MAX, true).value_or(0);
  r.tenant_id = f.Str("tenant_id", true).value_or("");
  r.key_id = f.Str("key_id", true).value_or("");
  r.rpm = f.Int("rpm", 0, 1'000'000'000, false).value_or(0);
  r.tpm = f.Int("tpm", 0, 1'000'000'000'000, false).value_or(0);
  r.tokens_back = f.Int("tokens_back", -1'000'000'000'000, 1'000'000'000'000, false).value_or(0);
  r.requests_back = f.Int("requests_back", 0, 1'000'000'000, false).value_or(0);
  r.used = ParseUnits(body, "used", f);
  r.give_back = ParseUnits(body, "give_back", f);
  r.want = ParseUnits(body, "want", f);
  r.min = ParseUnits(body, "min", f);
  if (f.ok() && body.contains("close")) {
    if (!body["close"].is_boolean()) f.Fail("invalid_type", "`close` must be true or false", "close");
    r.close = f.ok() && body["close"].get<bool>();
  }
  if (f.ok() && !ValidClientId(id, 128)) f.Fail("invalid_value", "the slice id must be 1..128 of [A-Za-z0-9_.:/-]", "id");
  if (f.ok() && !ValidClientId(r.key_id, 128)) f.Fail("invalid_value", "`key_id` must be 1..128 of [A-Za-z0-9_.:/-]", "key_id");
  if (!f.ok()) return f.error();
  if (Status st = tenants_.Check(r.tenant_id); !st.ok()) return ErrorReply(st);
  if (body.contains("usage")) {
    Reply error;
    auto usage = SliceUsage(body["usage"], r.tenant_id, &error);
    if (!usage) return error;
    r.usage = std::move(*usage);
  }
  accounts_.ExpireSlices(pending_);
  auto h = accounts_.ReportSlice(id, std::move(r), config_.gateway.slices.ttl, pending_);
  if (!h.ok()) return ErrorReply(h.status());
  Flush();  // durable before it is answered (the route's group commit)
  Reply reply;
  reply.body = SliceJson(*h);
  return reply;
}

Reply ControlPlane::ListSlices(const std::string& tenant_id) {
  accounts_.ExpireSlices(pending_);
  Flush();
  json data = json::array();
  for (const auto& h : accounts_.OpenSlices(tenant_id)) data.push_back(SliceJson(h));
  Reply r;
  r.body = {{"object", "list"}, {"data", std::move(data)}, {"ttl_ms", config_.gateway.slices.ttl.ms}};
  return r;
}

}  // namespace ll::api
