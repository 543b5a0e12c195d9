#include "control/tenants.h"

#include <fmt/format.h>

#include "control/auth.h"
#include "core/ids.h"

namespace ll::control {

namespace {

// Characters of a new key kept to tell keys apart in listings: "ll_" and 8 of its 64 hex
// digits (32 of its 256 random bits; the rest stay secret).
constexpr size_t kKeyPrefix = 11;

}  // namespace

store::KeyRecord& Tenants::Add(store::KeyRecord k, store::Batch* batch) {
  if (batch != nullptr) batch->keys.push_back(k);
  key_hash_by_id_[k.id] = k.hash;
  auto& stored = keys_by_hash_[k.hash];
  stored = std::move(k);
  return stored;
}

Result<std::string> Tenants::Restore(const std::vector<store::TenantRecord>& tenants,
                                     const std::vector<store::KeyRecord>& keys, const std::string& admin_key_env,
                                     Time now, store::Batch& batch) {
  for (const auto& t : tenants) tenants_[t.id] = t;
  key_count_ = keys.size();
  bool have_admin = false;
  for (const auto& k : keys) {
    have_admin = have_admin || k.admin;
    Add(k, nullptr);
  }
  auto add_admin = [&](const std::string& key) {
    store::KeyRecord k;
    k.id = MakeExternalId("key", ++key_count_);
    k.hash = HashApiKey(key);
    k.admin = true;
    k.created = now;
    Add(std::move(k), &batch);
  };
  std::string once;
  if (!admin_key_env.empty()) {
    if (admin_key_env.size() < 16) return Status::Invalid("LANDLORD_ADMIN_KEY must be at least 16 characters");
    if (!keys_by_hash_.contains(HashApiKey(admin_key_env))) add_admin(admin_key_env);
  } else if (!have_admin) {
    once = NewApiKey();
    add_admin(once);
  }
  return once;
}

Status Tenants::Check(const std::string& tenant_id, std::string_view param) const {
  if (Exists(tenant_id)) return Status::Ok();
  return Status(StatusCode::kNotFound, "tenant_not_found", fmt::format("no tenant `{}`", tenant_id), param);
}

store::TenantRecord Tenants::Create(std::string name, Time now, store::Batch& batch) {
  store::TenantRecord t;
  t.id = "ten_" + RandomHex(8);
  t.name = std::move(name);
  t.created = now;
  tenants_[t.id] = t;
  batch.tenants.push_back(t);
  return t;
}

Result<Tenants::NewKey> Tenants::CreateKey(const KeySpec& spec, Time now, store::Batch& batch) {
  LL_RETURN_IF_ERROR(Check(spec.tenant_id));
  std::string key = NewApiKey();
  store::KeyRecord k;
  k.id = MakeExternalId("key", ++key_count_);
  k.tenant_id = spec.tenant_id;
  k.hash = HashApiKey(key);
  k.created = now;
  k.rpm = spec.rpm;
  k.tpm = spec.tpm;
  k.name = spec.name;
  k.prefix = key.substr(0, kKeyPrefix);
  k.expires = spec.expires;
  return NewKey{.record = Add(std::move(k), &batch), .secret = std::move(key)};
}

Result<Tenants::KeyPage> Tenants::ListKeys(const std::string& tenant_id, int limit, const std::string& after) const {
  if (!tenant_id.empty()) LL_RETURN_IF_ERROR(Check(tenant_id));
  KeyPage page;
  for (auto it = after.empty() ? key_hash_by_id_.begin() : key_hash_by_id_.upper_bound(after);
       it != key_hash_by_id_.end(); ++it) {
    const store::KeyRecord& k = keys_by_hash_.at(it->second);
    if (!tenant_id.empty() && k.tenant_id != tenant_id) continue;
    if (static_cast<int>(page.keys.size()) == limit) {
      page.has_more = true;
      break;
    }
    page.keys.push_back(&k);
  }
  return page;
}

Result<Tenants::Revocation> Tenants::RevokeKey(const std::string& id, Time now, store::Batch& batch) {
  auto it = key_hash_by_id_.find(id);
  if (it == key_hash_by_id_.end()) return Status(StatusCode::kNotFound, "key_not_found", fmt::format("no key `{}`", id));
  store::KeyRecord& k = keys_by_hash_.at(it->second);
  if (k.admin) {
    return Status(StatusCode::kConflict, "admin_key",
                  fmt::format("`{}` is an admin key: it cannot be revoked over the API", id));
  }
  if (k.revoked != kTimeMax) return Revocation{.record = k, .changed = false};  // again: nothing changes
  k.revoked = now;
  batch.key_revocations.push_back({k.id, k.revoked});
  return Revocation{.record = k, .changed = true};
}

const store::KeyRecord* Tenants::Find(std::string_view key, Time now) const {
  if (key.empty() || key.size() > 256) return nullptr;
  auto it = keys_by_hash_.find(HashApiKey(key));
  if (it == keys_by_hash_.end() || !Usable(it->second, now)) return nullptr;
  return &it->second;
}

}  // namespace ll::control
