// The gateway's pure parts: request parsing and the upstream rewrite, token buckets, routing,
// and the filter chain (with filters of its own and the limits and budget filters on fake
// clients).
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "gateway/api_call.h"
#include "gateway/budget_filter.h"
#include "gateway/engine_replicas.h"
#include "gateway/filter_chain.h"
#include "gateway/limits.h"
#include "gateway/limits_filter.h"
#include "gateway/router.h"

namespace ll::gateway {
namespace {

using nlohmann::json;

ApiCall MustParse(Endpoint e, const std::string& body) {
  ParseError pe;
  auto c = ParseApiCall(e, body, 64, &pe);
  EXPECT_TRUE(c.ok()) << body << ": " << pe.param << ": " << pe.message;
  return c.ok() ? *c : ApiCall{};
}

ParseError MustFail(Endpoint e, const std::string& body) {
  ParseError pe;
  auto c = ParseApiCall(e, body, 64, &pe);
  EXPECT_FALSE(c.ok()) << body;
  return pe;
}

TEST(ApiCall, ReadsWhatTheFiltersNeed) {
  ApiCall c = MustParse(Endpoint::kChatCompletions,
                        R"({"model":"m","messages":[{"role":"system","content":"be brief"},)"
                        R"({"role":"user","content":[{"type":"text","text":"hello"}]}],"max_tokens":7,"stream":true,)"
                        R"("stream_options":{"include_usage":true},"n":2,"temperature":0.5})");
  EXPECT_EQ(c.model, "m");
  EXPECT_TRUE(c.stream);
  EXPECT_TRUE(c.client_wants_usage);
  EXPECT_EQ(c.max_tokens, 7);
  EXPECT_EQ(c.n, 2);
  EXPECT_EQ(c.messages, 2);
  // Role names and contents, "system:" + "be brief" + "user:" + "hello".
  EXPECT_EQ(c.prompt_bytes, 7 + 8 + 5 + 5);
  EXPECT_EQ(c.EstimatedPromptTokens(), (25 + 3) / 4);
  EXPECT_GE(c.WorstPromptTokens(), c.prompt_bytes);

  ApiCall p = MustParse(Endpoint::kCompletions, R"({"model":"m","prompt":[[1,2,3],[4]],"max_completion_tokens":3})");
  EXPECT_EQ(p.prompt_token_ids, 4);
  EXPECT_EQ(p.max_tokens, 3);
  ApiCall e = MustParse(Endpoint::kEmbeddings, R"({"model":"m","input":["a","bb"]})");
  EXPECT_EQ(e.messages, 2);
  EXPECT_EQ(e.prompt_bytes, 3);
}

TEST(ApiCall, SharedPrefixesHashAlikeOthersNot) {
  const std::string sys = std::string(100, 's');
  auto body = [&](const std::string& user) {
    return json{{"model", "m"}, {"messages", {{{"role", "system"}, {"content", sys}}, {{"role", "user"}, {"content", user}}}}}.dump();
  };
  // Only the first 64 bytes are hashed (MustParse): the same system prompt, the same hash.
  EXPECT_EQ(MustParse(Endpoint::kChatCompletions, body("a")).prefix_hash,
            MustParse(Endpoint::kChatCompletions, body("b")).prefix_hash);
  ApiCall other = MustParse(Endpoint::kChatCompletions,
                            json{{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}.dump());
  EXPECT_NE(MustParse(Endpoint::kChatCompletions, body("a")).prefix_hash, other.prefix_hash);
}

TEST(ApiCall, BadInputNamesTheField) {
  struct Case {
    Endpoint e;
    std::string body, param, code;
  };
  const std::vector<Case> cases = {
      {Endpoint::kChatCompletions, "", "", "invalid_json"},
      {Endpoint::kChatCompletions, "{", "", "invalid_json"},
      {Endpoint::kChatCompletions, "[1]", "", "invalid_json"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[]} x)", "", "invalid_json"},
      {Endpoint::kChatCompletions, R"({"messages":[{"role":"user","content":"x"}]})", "model", "missing_field"},
      {Endpoint::kChatCompletions, R"({"model":3,"messages":[]})", "model", "invalid_type"},
      {Endpoint::kChatCompletions, R"({"model":""})", "model", "invalid_value"},
      {Endpoint::kChatCompletions, R"({"model":"m"})", "messages", "missing_field"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":{}})", "messages", "invalid_type"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[]})", "messages", "invalid_value"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[3]})", "messages[0]", "invalid_type"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[{"content":"x"}]})", "messages[0].role", "missing_field"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content", "invalid_type"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})", "max_tokens", "invalid_value"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"5"})", "max_tokens", "invalid_type"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":99999999999})", "max_tokens", "invalid_value"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream", "invalid_type"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":3})", "stream_options", "invalid_type"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":1}})", "stream_options.include_usage", "invalid_type"},
      {Endpoint::kChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", "n", "invalid_value"},
      {Endpoint::kCompletions, R"({"model":"m","prompt":{}})", "prompt", "invalid_type"},
      {Endpoint::kCompletions, R"({"model":"m","prompt":[]})", "prompt", "invalid_value"},
      {Endpoint::kCompletions, R"({"model":"m","prompt":[-1]})", "prompt[0]", "invalid_type"},
      {Endpoint::kEmbeddings, R"({"model":"m"})", "input", "missing_field"},
  };
  for (const Case& c : cases) {
    ParseError pe = MustFail(c.e, c.body);
    EXPECT_EQ(pe.param, c.param) << c.body << ": " << pe.message;
    EXPECT_EQ(pe.code, c.code) << c.body << ": " << pe.message;
    EXPECT_FALSE(pe.message.empty());
  }
}

// The body sent upstream is the client's, with only stream_options changed.
TEST(ApiCall, UpstreamBodyAsksForUsageOnStreamsAndDropsStreamOptionsOtherwise) {
  auto rewrite = [](const std::string& body) {
    ApiCall c = MustParse(Endpoint::kChatCompletions, body);
    std::string out = UpstreamBody(body, c, 4096);
    json j = json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j;
  };
  const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
  json a = rewrite(R"({"model":"m",)" + msgs + R"(,"stream":true})");
  EXPECT_EQ(a["stream_options"], json({{"include_usage", true}}));
  json b = rewrite(R"({"model":"m",)" + msgs + R"(,"stream":true,"stream_options":{"include_usage":false}})");
  EXPECT_EQ(b["stream_options"], json({{"include_usage", true}}));
  json c = rewrite(R"({"model":"m","stream_options" : {"include_usage":true} ,)" + msgs + "}");
  EXPECT_FALSE(c.contains("stream_options"));
  EXPECT_EQ(c["max_tokens"], 4096);
  EXPECT_EQ(c["model"], "m");
  json d = rewrite(R"({"model":"m",)" + msgs + R"(,"stream_options":null})");
  EXPECT_FALSE(d.contains("stream_options"));
  json e = rewrite(R"({"stream":true,"stream_options":{"include_usage":true,"x":{"y":[1]}},"model":"m",)" + msgs + "}");
  EXPECT_EQ(e["stream_options"], json({{"include_usage", true}}));
  EXPECT_EQ(e["messages"][0]["content"], "x");
  // A request without a token limit gets the one its budget held.
  EXPECT_EQ(a["max_tokens"], 4096);
  // Untouched otherwise: byte for byte.
  const std::string plain = R"({"model":"m", )" + msgs + R"(, "temperature": 0.25, "max_tokens": 9})";
  EXPECT_EQ(UpstreamBody(plain, MustParse(Endpoint::kChatCompletions, plain), 4096), plain);
  // Both limits: the larger is held; escaped field names are refused.
  EXPECT_EQ(MustParse(Endpoint::kChatCompletions, R"({"model":"m",)" + msgs + R"(,"max_completion_tokens":100,"max_tokens":1})").max_tokens, 100);
  EXPECT_EQ(MustFail(Endpoint::kChatCompletions, R"({"model":"m",)" + msgs + R"(,"max_tok\)" "u0065ns\":100}").code, "invalid_value");
}

TEST(TokenBucket, RefillsContinuouslyAndCapsAtTheLimit) {
  TokenBucket b(60, Time{0});  // one a second
  EXPECT_TRUE(b.Take(60, Time{0}));
  EXPECT_FALSE(b.Take(1, Time{0}));
  EXPECT_EQ(b.WaitFor(1, Time{0}), Duration::Millis(1000));
  EXPECT_FALSE(b.Take(1, Time{999}));
  EXPECT_TRUE(b.Take(1, Time{1000}));
  EXPECT_EQ(b.Remaining(Time{1'000'000}), 60);  // capped
  b.Give(-30, Time{1'000'000});                  // used more than reserved
  EXPECT_EQ(b.Remaining(Time{1'000'000}), 30);
}

TEST(RateLimits, RequestsAndTokensPerKeyWithSettlement) {
  RateLimits l;
  Time t{0};
  auto d = l.Take("k", 2, 100, 40, t);
  EXPECT_TRUE(d.ok);
  EXPECT_EQ(d.remaining_requests, 1);
  EXPECT_EQ(d.remaining_tokens, 60);
  d = l.Take("k", 2, 100, 70, t);  // tokens short
  EXPECT_FALSE(d.ok);
  EXPECT_TRUE(d.tokens);
  EXPECT_GT(d.retry_after.ms, 0);
  l.Settle("k", 40, 10, t);  // used 10 of 40: 30 back
  EXPECT_TRUE(l.Take("k", 2, 100, 70, t).ok);
  d = l.Take("k", 2, 100, 1, t);  // third request in the minute
  EXPECT_FALSE(d.ok);
  EXPECT_FALSE(d.tokens);
  EXPECT_EQ(d.retry_after, Duration::Millis(30'000));
  d = l.Take("k", 2, 100, 101, Time{120'000});
  EXPECT_FALSE(d.ok);
  EXPECT_TRUE(d.never);
  EXPECT_TRUE(l.Take("other", 2, 100, 100, t).ok);  // keys are separate
  EXPECT_TRUE(l.Take("free", 0, 0, 1'000'000, t).ok);  // 0: no limit
  EXPECT_EQ(FormatResetDuration(Duration::Millis(250)), "250ms");
  EXPECT_EQ(FormatResetDuration(Duration::Millis(2000)), "2s");
  EXPECT_EQ(FormatResetDuration(Duration::Millis(360'000)), "6m0s");
}

Replica NewReplica(std::string id, std::string model) {
  Replica r;
  r.id = std::move(id);
  r.model = std::move(model);
  r.host = "127.0.0.1";
  r.port = "1";
  return r;
}

Router ThreeReplicas(RouterOptions o = {}) {
  Router r(o);
  for (int i = 1; i <= 3; ++i) r.Add(NewReplica("rep_" + std::to_string(i), "m"));
  r.Add(NewReplica("rep_other", "x"));
  return r;
}

TEST(Router, SamePrefixSameReplicaUntilItIsBusy) {
  Router r = ThreeReplicas();
  Replica* first = r.Pick("m", 42, {}, Time{0});
  ASSERT_NE(first, nullptr);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(r.Pick("m", 42, {}, Time{0})->id, first->id);
  // Busy past the slack: the least-loaded replica takes it.
  r.Begin(first, 100'000);
  Replica* spill = r.Pick("m", 42, {}, Time{0});
  EXPECT_NE(spill->id, first->id);
  r.End(first->id, 100'000);
  EXPECT_EQ(r.Pick("m", 42, {}, Time{0})->id, first->id);
  // Prefixes spread over the replicas.
  std::map<std::string, int> seen;
  for (uint64_t h = 0; h < 3000; ++h) ++seen[r.Pick("m", Rng(h).Next(), {}, Time{0})->id];
  EXPECT_EQ(seen.size(), 3u);
  for (auto& [id, n] : seen) EXPECT_GT(n, 800) << id;
}

TEST(Router, LeastLoadedWithoutAffinityAndSkipsDrainingFailedExcluded) {
  RouterOptions o;
  o.affinity = false;
  Router r = ThreeReplicas(o);
  r.Begin(r.Find("rep_1"), 5);
  r.Begin(r.Find("rep_2"), 3);
  r.Begin(r.Find("rep_3"), 4);
  EXPECT_EQ(r.Pick("m", 1, {}, Time{0})->id, "rep_2");
  EXPECT_TRUE(r.Drain("rep_2"));
  EXPECT_EQ(r.Pick("m", 1, {}, Time{0})->id, "rep_3");
  r.Failed("rep_3", Time{0});
  EXPECT_EQ(r.Pick("m", 1, {}, Time{0})->id, "rep_1");
  EXPECT_EQ(r.Pick("m", 1, {"rep_1"}, Time{0}), nullptr);
  // The ejection ends.
  EXPECT_EQ(r.Pick("m", 1, {"rep_1"}, Time{0} + o.eject_for)->id, "rep_3");
  EXPECT_EQ(r.Pick("nope", 1, {}, Time{0}), nullptr);
  EXPECT_TRUE(r.Serves("x"));
  EXPECT_FALSE(r.Serves("nope"));
}

// An engine replica whose server restarts: routed around while down, back at its new port with
// its draining and load kept.
TEST(Router, ADownReplicaIsRoutedAroundUntilItIsUpAgain) {
  Router r = ThreeReplicas();
  Replica* preferred = r.Pick("m", 42, {}, Time{0});
  const std::string id = preferred->id;
  r.Begin(preferred, 7);
  EXPECT_TRUE(r.SetDown(id));
  for (uint64_t h = 0; h < 300; ++h) EXPECT_NE(r.Pick("m", h, {}, Time{0})->id, id);
  EXPECT_TRUE(r.SetUp(id, "127.0.0.1", "4242"));
  EXPECT_EQ(r.Pick("m", 42, {}, Time{0})->id, id);
  EXPECT_EQ(r.Find(id)->port, "4242");
  EXPECT_EQ(r.Find(id)->outstanding_tokens, 7);
  // Reclaimed while down: still draining once up.
  EXPECT_TRUE(r.SetDown(id));
  EXPECT_TRUE(r.Drain(id));
  EXPECT_TRUE(r.SetUp(id, "127.0.0.1", "4343"));
  EXPECT_NE(r.Pick("m", 42, {}, Time{0})->id, id);
  EXPECT_FALSE(r.SetDown("rep_unknown"));
  EXPECT_FALSE(r.SetUp("rep_unknown", "127.0.0.1", "1"));
}

// An engine's server as one shell command (the Slurm backend's model command): every word
// quoted, a quote inside one too.
TEST(EngineShellCommand, QuotesEachWord) {
  EngineConfig c;
  c.server = "/opt/llama/llama-server";
  c.model_path = "/models/it's.gguf";
  c.args = {"--alias", "a b"};
  EXPECT_EQ(EngineShellCommand(c, "{addr}", "{port}"),
            "'/opt/llama/llama-server' '-m' '/models/it'\\''s.gguf' '-t' '1' '--host' '{addr}' '--port' '{port}' "
            "'--alias' 'a b'");
}

// ---- the filter chain ----

// What the client got.
struct FakeDownstream final : Downstream {
  std::vector<std::pair<Head, std::string>> sent;
  void Send(Head head, std::string body) override { sent.emplace_back(std::move(head), std::move(body)); }
  void Begin(Head) override {}
  void Chunk(std::string) override {}
  void End() override {}
  bool open() const override { return true; }
};

std::string HeaderOf(const Downstream::Head& h, const std::string& name) {
  for (const auto& [k, v] : h.headers) {
    if (k == name) return v;
  }
  return "";
}

// Records what reaches it (into `log`) and does what it is told.
class ScriptedFilter final : public StreamFilter {
 public:
  enum class Does { kContinue, kStop, kStopAnsweringAtOnce, kReject, kAnswer, kHoldCompletion };
  ScriptedFilter(std::string name, Does does, std::vector<std::string>* log) : name_(std::move(name)), does_(does), log_(log) {}
  FilterStatus DecodeHeaders(RequestState&) override {
    log_->push_back(name_ + ".headers");
    switch (does_) {
      case Does::kStop:
        return FilterStatus::kStopIteration;  // resumed from outside (Resume)
      case Does::kStopAnsweringAtOnce:
        callbacks().ContinueDecoding();  // a client that answers before the filter returns
        return FilterStatus::kStopIteration;
      case Does::kReject:
        callbacks().SendLocalReply({.status = 429, .code = "rate_limit_exceeded", .message = "slow down", .type = "requests"});
        return FilterStatus::kStopIteration;
      default:
        return FilterStatus::kContinue;
    }
  }
  FilterStatus DecodeBody(RequestState&) override {
    log_->push_back(name_ + ".body");
    if (does_ != Does::kAnswer) return FilterStatus::kContinue;
    auto keep = callbacks().KeepAlive();
    callbacks().Complete({.input_tokens = 1, .output_tokens = 2}, [this, keep](Status st) {
      log_->push_back(name_ + ".last_bytes " + (st.ok() ? "ok" : st.message()));
      if (st.ok()) callbacks().Send(200, "application/json", "{}");
    });
    return FilterStatus::kStopIteration;
  }
  FilterStatus EncodeComplete(RequestState&, const Completion& c) override {
    log_->push_back(fmt::format("{}.complete {}+{}{}", name_, c.input_tokens, c.output_tokens,
                                c.last_bytes_wait ? " waits" : ""));
    return does_ == Does::kHoldCompletion ? FilterStatus::kStopIteration : FilterStatus::kContinue;
  }
  void Resume() { callbacks().ContinueDecoding(); }
  void Durable(Status st) { callbacks().ContinueEncoding(std::move(st)); }

 private:
  std::string name_;
  Does does_;
  std::vector<std::string>* log_;
};

struct Chain {
  std::shared_ptr<FakeDownstream> down = std::make_shared<FakeDownstream>();
  StatusCounts codes;
  std::shared_ptr<FilterChain> chain;
  std::vector<std::string> log;
  explicit Chain(RequestState state = {}) {
    state.id = "req_1";
    chain = std::make_shared<FilterChain>(std::move(state), down, &codes);
  }
  ScriptedFilter* Add(std::string name, ScriptedFilter::Does does) {
    auto f = std::make_unique<ScriptedFilter>(std::move(name), does, &log);
    ScriptedFilter* p = f.get();
    chain->Add(std::move(f));
    return p;
  }
};

using Does = ScriptedFilter::Does;

TEST(FilterChain, AFilterThatStopsResumesTheChainWhenItsAnswerComes) {
  Chain c;
  ScriptedFilter* auth = c.Add("auth", Does::kStop);
  c.Add("sync", Does::kStopAnsweringAtOnce);
  c.Add("route", Does::kAnswer);
  c.chain->Start();
  EXPECT_EQ(c.log, std::vector<std::string>{"auth.headers"});  // waiting for its answer
  EXPECT_TRUE(c.down->sent.empty());
  auth->Resume();
  // Headers through every filter, then the body; completion from the last filter to the first.
  EXPECT_EQ(c.log, (std::vector<std::string>{"auth.headers", "sync.headers", "route.headers", "auth.body",
                                             "sync.body", "route.body", "route.complete 1+2 waits",
                                             "sync.complete 1+2 waits", "auth.complete 1+2 waits",
                                             "route.last_bytes ok"}));
  ASSERT_EQ(c.down->sent.size(), 1u);
  EXPECT_EQ(c.down->sent[0].first.status, 200);
  EXPECT_EQ(HeaderOf(c.down->sent[0].first, "x-request-id"), "req_1");
  EXPECT_EQ((c.codes[{"-", 200}]), 1);
  auth->Resume();  // a late answer after the end: nothing happens
  EXPECT_EQ(c.down->sent.size(), 1u);
}

TEST(FilterChain, AFilterThatRejectsEndsTheChainWithItsError) {
  Chain c;
  c.Add("auth", Does::kContinue);
  c.Add("limits", Does::kReject);
  c.Add("route", Does::kAnswer);
  c.chain->Start();
  // The filters after it see nothing; those before see the request complete with nothing used.
  EXPECT_EQ(c.log, (std::vector<std::string>{"auth.headers", "limits.headers", "route.complete 0+0",
                                             "limits.complete 0+0", "auth.complete 0+0"}));
  ASSERT_EQ(c.down->sent.size(), 1u);
  EXPECT_EQ(c.down->sent[0].first.status, 429);
  const json body = json::parse(c.down->sent[0].second);
  EXPECT_EQ(body["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(body["error"]["message"], "slow down");
  EXPECT_EQ(body["error"]["type"], "requests");
  EXPECT_TRUE(body["error"]["param"].is_null());
  EXPECT_EQ((c.codes[{"-", 429}]), 1);
}

TEST(FilterChain, CompletionWaitsForAFilterThatHoldsTheLastBytes) {
  Chain c;
  ScriptedFilter* meter = c.Add("meter", Does::kHoldCompletion);
  c.Add("route", Does::kAnswer);
  c.chain->Start();
  EXPECT_EQ(c.log.back(), "meter.complete 1+2 waits");
  EXPECT_TRUE(c.down->sent.empty());  // held until the usage is durable
  meter->Durable(Status::Io("the ledger gave up"));
  EXPECT_EQ(c.log.back(), "route.last_bytes the ledger gave up");
  // A chain whose filters all continue has nobody to answer: 500.
  Chain idle;
  idle.Add("auth", Does::kContinue);
  idle.chain->Start();
  ASSERT_EQ(idle.down->sent.size(), 1u);
  EXPECT_EQ(idle.down->sent[0].first.status, 500);
}

// Limits and budget on a ledger that answers later: a request the budget refuses gives back
// what the limits took, and the limits' headers come with every answer after them.
class FakeLedger final : public LimitsClient, public BudgetClient {
 public:
  std::vector<std::function<void()>> answers;  // run them to answer
  std::vector<std::string> given_back;
  Status hold = Status::Ok();
  void TakeLimits(const Admission&, std::function<void(RateLimits::Decision)> done) override {
    RateLimits::Decision d;
    d.limit_requests = 10;
    d.remaining_requests = 9;
    answers.push_back([d, done] { done(d); });
  }
  void GiveBackLimits(const std::string& hold_id) override { given_back.push_back(hold_id); }
  void Hold(const Admission&, std::function<void(Status)> done) override {
    answers.push_back([this, done] { done(hold); });
  }
  void AnswerAll() {
    while (!answers.empty()) {  // an answer may ask again
      auto answer = std::move(answers.front());
      answers.erase(answers.begin());
      answer();
    }
  }
};

TEST(FilterChain, BudgetRefusedGivesTheLimitsBack) {
  for (const bool short_balance : {false, true}) {
    FakeLedger ledger;
    ledger.hold = short_balance ? Status::Exhausted("the balance available is $0.000001") : Status::Ok();
    RequestState state;
    state.admission.hold_id = "req_1";
    state.admission.amount = Money::Micros(1500);
    Chain c(std::move(state));
    c.chain->Add(std::make_unique<LimitsFilter>(ledger));
    c.chain->Add(std::make_unique<BudgetFilter>(ledger));
    c.Add("route", Does::kAnswer);
    c.chain->Start();
    EXPECT_EQ(c.log, std::vector<std::string>{"route.headers"});  // the body waits for the limits
    ledger.AnswerAll();          // the limits, then the hold
    ASSERT_EQ(c.down->sent.size(), 1u) << short_balance;
    const auto& [head, body] = c.down->sent[0];
    EXPECT_EQ(HeaderOf(head, "x-ratelimit-remaining-requests"), "9");
    EXPECT_EQ(c.chain->state().held, !short_balance);
    if (short_balance) {
      EXPECT_EQ(head.status, 429);
      EXPECT_EQ(HeaderOf(head, "x-should-retry"), "false");
      EXPECT_EQ(json::parse(body)["error"]["code"], "insufficient_quota");
      EXPECT_EQ(ledger.given_back, std::vector<std::string>{"req_1"});
    } else {
      EXPECT_EQ(head.status, 200);
      EXPECT_TRUE(ledger.given_back.empty());  // settled by the meter instead
    }
  }
}

}  // namespace
}  // namespace ll::gateway
