// The control plane's API keys: creation (with an optional name and expiry), the listing
// (never a secret: only hashes are stored), revocation, and the check every request makes.
// A revoked or expired key is refused by the very next request on this server; standalone
// gateways ask `POST /admin/keys/verify` and cache its answer for a bounded time
// (cli/remote_accounts.h).
#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/fields.h"

namespace ll::api {

using nlohmann::json;

namespace {

constexpr size_t kMaxKeyName = 200;  // as a tenant's name
// The furthest expiry accepted: about ten years of the server clock.
constexpr Duration kMaxKeyLife = Duration::Hours(24 * 3660);
json TimeOrNull(Time t) { return t == kTimeMax ? json(nullptr) : json(FormatUtc(t)); }
json TextOrNull(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

const char* KeyState(const store::KeyRecord& k, Time now) {
  if (k.revoked != kTimeMax) return "revoked";
  if (k.expires != kTimeMax && now >= k.expires) return "expired";
  return "active";
}

// Up to a whole second: the API shows times in seconds, so `expires_at` as shown is exact.
Time CeilSecond(Time t) { return Time{(t.ms + 999) / 1000 * 1000}; }

// `expires_at` (RFC 3339, server clock) or `expires_in_s`: when the key stops working, or
// kTimeMax for never. Errors go to `f`.
Time KeyExpiry(Fields& f, Time now) {
  auto at_text = f.Str("expires_at", false);
  auto in_s = f.Int("expires_in_s", 1, kMaxKeyLife.ms / 1000, false);
  if (!f.ok()) return kTimeMax;
  if (at_text && in_s) {
    f.Fail("invalid_value", "give one of `expires_at` and `expires_in_s`", "expires_in_s");
    return kTimeMax;
  }
  if (in_s) return CeilSecond(now + Duration::Seconds(*in_s));
  if (!at_text) return kTimeMax;
  auto t = ParseUtc(*at_text);
  if (!t.ok()) {
    f.Fail("invalid_value", fmt::format("`expires_at`: {}", t.status().message()), "expires_at");
    return kTimeMax;
  }
  if (*t <= now || *t > now + kMaxKeyLife) {
    f.Fail("invalid_value",
           fmt::format("`expires_at` must be after the server's now ({}) and at most 3660 days later", FormatUtc(now)),
           "expires_at");
    return kTimeMax;
  }
  return CeilSecond(*t);
}

}  // namespace

json ControlPlane::KeyJson(const store::KeyRecord& k) const {
  return {{"id", k.id},
          {"object", "api_key"},
          {"tenant_id", TextOrNull(k.tenant_id)},
          {"name", TextOrNull(k.name)},
          {"prefix", TextOrNull(k.prefix)},
          {"admin", k.admin},
          {"rpm", k.rpm},
          {"tpm", k.tpm},
          {"created_at", TimeOrNull(k.created)},
          {"expires_at", TimeOrNull(k.expires)},
          {"revoked_at", TimeOrNull(k.revoked)},
          {"state", KeyState(k, Now())}};
}

Reply ControlPlane::CreateKey(const json& body) {
  Fields f(body);
  f.Only({"tenant_id", "rpm", "tpm", "name", "expires_at", "expires_in_s"});
  auto tenant = f.Str("tenant_id", true);
  auto rpm = f.Int("rpm", 0, 100'000'000, false);
  auto tpm = f.Int("tpm", 0, 10'000'000'000, false);
  auto name = f.Text("name", false, kMaxKeyName);
  const Time expires = KeyExpiry(f, Now());
  if (!f.ok()) return f.error();
  auto k = control::ControlPlane::CreateKey({.tenant_id = *tenant, .name = name.value_or(""), .rpm = rpm.value_or(0),
                                             .tpm = tpm.value_or(0), .expires = expires});
  if (!k.ok()) return ErrorReply(k.status());
  Reply r;
  r.status = 201;
  r.body = KeyJson(k->record);
  r.body["key"] = k->secret;
  r.body["note"] = "the key is shown only once; only its hash is stored";
  return r;
}

Reply ControlPlane::ListKeys(const std::string& tenant_id, int limit, const std::string& after) {
  auto page = control::ControlPlane::ListKeys(tenant_id, limit, after);
  if (!page.ok()) return ErrorReply(page.status());
  json data = json::array();
  for (const store::KeyRecord* k : page->keys) data.push_back(KeyJson(*k));
  Reply r;
  r.body = {{"object", "list"}, {"data", std::move(data)}, {"has_more", page->has_more}};
  return r;
}

Reply ControlPlane::RevokeKey(const std::string& id) {
  auto revoked = control::ControlPlane::RevokeKey(id);
  if (!revoked.ok()) return ErrorReply(revoked.status());
  Reply r;
  r.body = KeyJson(revoked->record);
  return r;
}

}  // namespace ll::api
