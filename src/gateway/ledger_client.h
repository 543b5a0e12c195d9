// What the gateway's filters need from the ledger, one small client interface per filter:
// KeyClient (auth), LimitsClient (limits), BudgetClient (budget) and MeterClient (meter).
// Two implementations serve them all: the control plane itself inside `landlord serve`
// (api::GatewayAccounts, answers at once) and the control plane's admin API over HTTP from a
// standalone `landlord gateway` (cli::RemoteAccounts, answers later on the gateway's
// io_context). Either way a client's callbacks run on the gateway's thread, and the rate
// limits are the ledger's, so that every gateway in front of one control plane shares them (no
// "limit × gateways").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/money.h"
#include "core/status.h"
#include "gateway/limits.h"

namespace ll::gateway {

// A tenant's API key as the ledger knows it.
struct Key {
  std::string tenant_id;
  std::string key_id;
  int64_t rpm = 0, tpm = 0;  // the key's own limits; 0: the gateway's
};

// One request asking in: its share of the key's rate limits (LimitsClient) and its worst
// case's cost (BudgetClient), under one id (the request id).
struct Admission {
  std::string hold_id;  // the request id
  std::string tenant_id;
  std::string key_id;
  int64_t rpm = 0, tpm = 0;  // the limits in force (0: that limit is off)
  int64_t tokens = 0;        // reserved against `tpm`: the prompt's estimate + the output ceiling
  Money amount;              // held on the prepaid balance
};

// What one answer used, as billed.
struct Usage {
  std::string key;  // idempotency key: request id + attempt
  std::string tenant_id;
  std::string model;
  int64_t input_tokens = 0, output_tokens = 0;
};

class KeyClient {
 public:
  virtual ~KeyClient() = default;
  // The tenant key's owner, or nullopt for a key that is not a tenant's; a Status that is not
  // Ok when the ledger could not be asked (the gateway answers 503, not 401).
  virtual void Authenticate(const std::string& api_key,
                            std::function<void(Status, std::optional<Key>)> done) = 0;
};

class LimitsClient {
 public:
  virtual ~LimitsClient() = default;
  // Takes one request and `a.tokens` from the key's rate limits (`a.rpm`, `a.tpm`) under
  // `a.hold_id`, or nothing: `done` gets the decision (not ok: refused).
  virtual void TakeLimits(const Admission& a, std::function<void(RateLimits::Decision)> done) = 0;
  // Gives back all that TakeLimits took under `hold_id`, the request too: it was refused after
  // the limits let it in, before it reached a model (its balance could not be held). A request
  // that was held gives its tokens back when it is settled (MeterClient).
  virtual void GiveBackLimits(const std::string& hold_id) = 0;
};

class BudgetClient {
 public:
  virtual ~BudgetClient() = default;
  // Holds `a.amount` of the tenant's prepaid balance under `a.hold_id`. `done` gets Ok,
  // kResourceExhausted with the reason when the balance is short, or another error when the
  // ledger cannot be reached.
  virtual void Hold(const Admission& a, std::function<void(Status)> done) = 0;
};

class MeterClient {
 public:
  virtual ~MeterClient() = default;
  // Charges the usage (never more than the hold), releases the rest of the hold and settles the
  // token reservation to the tokens used. `durable` (may be empty) is called once, on the
  // gateway's thread, when the usage is committed (Ok: a kill -9 cannot lose it now) or could
  // not be (the ledger gave up): the answer's last bytes wait for it.
  virtual void Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) = 0;
};

// The whole ledger: one object serving every filter's client (a control plane answers them
// all). The nested names are the ones the control plane's side uses.
class Accounts : public KeyClient, public LimitsClient, public BudgetClient, public MeterClient {
 public:
  using Key = gateway::Key;
  using Admission = gateway::Admission;
  using Usage = gateway::Usage;
};

}  // namespace ll::gateway
