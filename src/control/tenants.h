// Tenants: the owner's customers and their API keys (random, shown once, stored only as
// hashes: control/auth.h). The admin key is made here on first start.
//
// A component of the control plane (docs/architecture.md): no HTTP, no JSON. Changes go into
// the caller's store::Batch; errors are domain errors (Status with a reason and a field).
// Time is given by the caller (the server clock): a key past its expiry is refused from then.
//
// Thread-safety: none; the control plane's one thread.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "store/store.h"

namespace ll::control {

class Tenants {
 public:
  // At start: the stored tenants and keys. Adds an admin key: `admin_key_env` (at least 16
  // characters) unless stored already, or a new random one when there is no admin key at all;
  // returns the new random key (to print once), else empty.
  Result<std::string> Restore(const std::vector<store::TenantRecord>& tenants, const std::vector<store::KeyRecord>& keys,
                              const std::string& admin_key_env, Time now, store::Batch& batch);

  bool Exists(const std::string& tenant_id) const { return tenants_.contains(tenant_id); }
  // `tenant_not_found` naming `param` unless the tenant exists.
  Status Check(const std::string& tenant_id, std::string_view param = "tenant_id") const;
  const std::map<std::string, store::TenantRecord>& all() const { return tenants_; }
  store::TenantRecord Create(std::string name, Time now, store::Batch& batch);

  // ---- keys ----
  struct KeySpec {
    std::string tenant_id;
    std::string name;
    int64_t rpm = 0, tpm = 0;  // 0: no limit
    Time expires = kTimeMax;
  };
  struct NewKey {
    store::KeyRecord record;
    std::string secret;  // the key itself: shown once, never stored
  };
  Result<NewKey> CreateKey(const KeySpec& spec, Time now, store::Batch& batch);
  struct KeyPage {
    std::vector<const store::KeyRecord*> keys;
    bool has_more = false;
  };
  // Keys in id order (of `tenant_id` only, when set): at most `limit` after the key `after`.
  Result<KeyPage> ListKeys(const std::string& tenant_id, int limit, const std::string& after) const;
  struct Revocation {
    store::KeyRecord record;
    bool changed = false;  // false: it was revoked before
  };
  // `key_not_found`; an admin key is a conflict (`admin_key`).
  Result<Revocation> RevokeKey(const std::string& id, Time now, store::Batch& batch);
  // The record of a usable key (neither revoked nor expired at `now`), or null.
  const store::KeyRecord* Find(std::string_view key, Time now) const;
  static bool Usable(const store::KeyRecord& k, Time now) {
    return k.revoked == kTimeMax && (k.expires == kTimeMax || now < k.expires);
  }

 private:
  store::KeyRecord& Add(store::KeyRecord k, store::Batch* batch);

  std::map<std::string, store::TenantRecord> tenants_;
  std::unordered_map<std::string, store::KeyRecord> keys_by_hash_;
  std::map<std::string, std::string> key_hash_by_id_;  // key id → hash, in id order
  size_t key_count_ = 0;
};

}  // namespace ll::control
