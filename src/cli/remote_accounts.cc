#include "cli/remote_accounts.h"

#include <optional>

#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ll::cli {

using nlohmann::json;

// A keep-alive connection to the control plane that asks where it is again after a call that
// could not reach it (a standby may have taken over). A call that could not connect (nothing
// sent) is tried once more at the address asked again; other failures are the caller's to
// retry, as it knows which calls are safe to repeat.
class RemoteAccounts::Leader {
 public:
  explicit Leader(RemoteAccounts& owner) : owner_(owner) {}
  Result<HttpResponse> Request(std::string_view method, std::string_view target, const std::string& body) {
    for (int attempt = 0;; ++attempt) {
      if (!client_) {
        Result<Url> url = [&] {
          std::lock_guard<std::mutex> lock(owner_.locate_mu_);
          return owner_.locate_();
        }();
        if (!url.ok()) return Status::Io(fmt::format("no control plane: {}", url.status().message()));
        client_.emplace(*url, owner_.admin_key_);
      }
      auto r = client_->Request(method, target, body, Duration::Seconds(5));
      if (r.ok()) return r;
      client_.reset();
      if (attempt > 0 || r.status().code() != StatusCode::kUnavailable) return r;
    }
  }

 private:
  RemoteAccounts& owner_;
  std::optional<HttpClient> client_;
};

RemoteAccounts::RemoteAccounts(boost::asio::io_context& ioc, Locator locate, std::string admin_key,
                               const Clock* clock, int workers, Duration key_ttl)
    : ioc_(ioc), locate_(std::move(locate)), admin_key_(std::move(admin_key)), clock_(clock), key_ttl_(key_ttl) {
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Run(); });
}

RemoteAccounts::~RemoteAccounts() { Stop(Duration{}); }

void RemoteAccounts::Stop(Duration wait) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(wait.ms), [this] { return jobs_.empty() && unsettled_ == 0; });
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

int64_t RemoteAccounts::unsettled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unsettled_;
}

void RemoteAccounts::Run() {
  Leader client(*this);
  for (;;) {
    std::function<void(Leader&)> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job(client);
    } catch (const std::exception& e) {  // a job must not end the process from a worker thread
      fmt::print(stderr, "landlord gateway: ledger call failed: {}\n", e.what());
    }
    cv_.notify_all();
  }
}

void RemoteAccounts::Enqueue(std::function<void(Leader&)> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void RemoteAccounts::Authenticate(const std::string& api_key,
                                  std::function<void(Status, std::optional<Key>)> done) {
  const Time now = clock_->Now();
  if (auto it = keys_.find(api_key); it != keys_.end() && now < it->second.until) {
    done(Status::Ok(), it->second.key);
    return;
  }
  // A busy key whose entry just ran out asks once, not once per request that arrives meanwhile.
  auto [waiting, first] = verifying_.try_emplace(api_key);
  waiting->second.push_back(std::move(done));
  if (!first) return;
  Enqueue([this, api_key](Leader& c) {
    // Header bytes need not be UTF-8: such a key is no key of ours, and must not throw here.
    auto r = c.Request("POST", "/admin/keys/verify",
                       json{{"key", api_key}}.dump(-1, ' ', false, json::error_handler_t::replace));
    std::optional<Key> key;
    Status st;
    bool cache = false;
    if (r.ok() && r->status == 200) {
      json j = json::parse(r->body, nullptr, false);
      if (j.is_object() && j.contains("tenant_id") && j.contains("key_id")) {
        key = Key{j["tenant_id"].get<std::string>(), j["key_id"].get<std::string>(), j.value("rpm", int64_t{0}),
                  j.value("tpm", int64_t{0})};
        cache = true;
      }
    } else if (r.ok() && r->status == 404) {
      cache = true;  // a wrong key: remembered briefly, so a flood of them costs the control plane little
    } else {
      st = Status::Io(r.ok() ? fmt::format("the control plane answered {}", r->status) : r.status().message());
    }
    boost::asio::post(ioc_, [this, api_key, key, cache, st] {
      if (cache) {
        const Duration ttl = key ? key_ttl_ : Duration::Seconds(2);
        if (keys_.size() > 100'000) keys_.clear();  // bounded: a cache, not a table
        keys_[api_key] = {key, clock_->Now() + ttl};
      }
      auto waiting = verifying_.extract(api_key);  // first: a callback may ask again
      for (auto& done : waiting.mapped()) done(st, key);
    });
  });
}

void RemoteAccounts::TakeLimits(const Admission& a, std::function<void(gateway::RateLimits::Decision)> done) {
  using Decision = gateway::RateLimits::Decision;
  PostHold(a, /*with_limits=*/true, [this, id = a.hold_id, done = std::move(done)](Status st, Decision d) {
    if (d.ok) admitted_[id] = std::move(st);  // for Hold, next
    done(d);
  });
}

void RemoteAccounts::Hold(const Admission& a, std::function<void(Status)> done) {
  auto it = admitted_.find(a.hold_id);
  if (it == admitted_.end()) {  // no limits taken with it: the hold alone
    PostHold(a, /*with_limits=*/false,
             [done = std::move(done)](Status st, gateway::RateLimits::Decision) { done(st); });
    return;
  }
  Status st = std::move(it->second);
  admitted_.erase(it);
  done(st);
}

void RemoteAccounts::GiveBackLimits(const std::string& hold_id) {
  // A hold the control plane refused came with the limits given back. One it made that nobody
  // asked for goes as a settlement with no usage would (the limits with it).
  auto it = admitted_.find(hold_id);
  if (it == admitted_.end()) return;
  const bool held = it->second.ok();
  admitted_.erase(it);
  if (held) Settle(hold_id, Usage{}, nullptr);
}

void RemoteAccounts::PostHold(const Admission& a, bool with_limits,
                              std::function<void(Status, gateway::RateLimits::Decision)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++unsettled_;  // until the answer says whether a hold is left to release
  }
  Enqueue([this, a, with_limits, done = std::move(done)](Leader& c) mutable {
    json body = {{"id", a.hold_id}, {"tenant_id", a.tenant_id}, {"amount", FormatMoney(a.amount)}};
    if (with_limits) body["limits"] = {{"key_id", a.key_id}, {"rpm", a.rpm}, {"tpm", a.tpm}, {"tokens", a.tokens}};
    auto r = c.Request("POST", "/admin/holds", body.dump());
    Status st;
    gateway::RateLimits::Decision d;
    json j = r.ok() ? json::parse(r->body, nullptr, false) : json();
    if (j.is_object() && j.contains("limits")) d = gateway::DecisionFromJson(j["limits"]);
    if (!r.ok()) {
      st = Status::Io(fmt::format("the control plane did not answer: {}", r.status().message()));
    } else if (r->status == 201 || r->status == 200) {
      st = Status::Ok();
    } else if (r->status == 429) {
      d.ok = false;  // refused by the rate limits (the decision says which and until when)
    } else if (r->status == 402) {
      st = Status::Exhausted(j.is_object() ? j["error"].value("message", "balance short") : "balance short");
    } else {
      st = Status::Io(fmt::format("the control plane answered {}", r->status));
    }
    boost::asio::post(ioc_, [st, d, done = std::move(done)] { done(st, d); });
    if (!r.ok()) {
      // It may have committed the hold all the same (and then died, a standby taking over with
      // the hold): release it as a settlement is made, until acknowledged (never made: a 404).
      (void)SettleUntilAcknowledged(c, a.hold_id, R"({"usage":[]})");  // nothing billed: nobody waits
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    --unsettled_;
  });
}

void RemoteAccounts::Call(std::string method, std::string target, std::string body,
                          std::function<void(Result<HttpResponse>)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++unsettled_;
  }
  Enqueue([this, method = std::move(method), target = std::move(target), body = std::move(body),
           done = std::move(done)](Leader& c) mutable {
    Result<HttpResponse> r = c.Request(method, target, body);
    boost::asio::post(ioc_, [r = std::move(r), done = std::move(done)]() mutable { done(std::move(r)); });
    std::lock_guard<std::mutex> lock(mu_);
    --unsettled_;
  });
}

void RemoteAccounts::Settle(const std::string& hold_id, const Usage& usage, std::function<void(Status)> durable) {
  json body = {{"usage", json::array()}};
  if (usage.input_tokens > 0 || usage.output_tokens > 0) {
    body["usage"].push_back({{"key", usage.key},
                             {"tenant_id", usage.tenant_id},
                             {"model", usage.model},
                             {"input_tokens", usage.input_tokens},
                             {"output_tokens", usage.output_tokens}});
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++unsettled_;
  }
  Enqueue([this, hold_id, text = body.dump(), durable = std::move(durable)](Leader& c) mutable {
    Status st = SettleUntilAcknowledged(c, hold_id, text);
    if (durable) boost::asio::post(ioc_, [st, durable = std::move(durable)] { durable(st); });
  });
}

Status RemoteAccounts::SettleUntilAcknowledged(Leader& c, const std::string& hold_id, const std::string& body) {
  // Through a change of leader too: the usage keys and the hold id make a repeat count once.
  Status st = Status::Io("the control plane did not acknowledge the settlement");
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto r = c.Request("POST", "/admin/holds/" + hold_id + "/settle", body);
    if (r.ok() && r->status == 200) {
      st = Status::Ok();  // answered once committed (the hold API's group commit)
      break;
    }
    if (r.ok() && r->status == 404) {
      st = Status::NotFound(fmt::format("the control plane knows no hold `{}`", hold_id));
      break;
    }
    if (r.ok() && r->status >= 400 && r->status < 500) {
      fmt::print(stderr, "landlord gateway: settlement of `{}` refused: {} {}\n", hold_id, r->status, r->body);
      st = Status::Invalid(fmt::format("the control plane refused the settlement: HTTP {}", r->status));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 << std::min(attempt, 6)));
  }
  std::lock_guard<std::mutex> lock(mu_);
  --unsettled_;
  return st;
}

}  // namespace ll::cli
