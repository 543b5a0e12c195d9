// Regression tests (issue 15): the model API's OpenAI wire format. `created` is the answer's
// time, completion ids are unique across replicas and restarts, `n` is honoured and billed,
// every forwarded field has the type the OpenAI API gives it (a mistyped one is 400 naming it,
// nothing held or billed), `GET /v1/models/{id}`, and one 401 convention on every API.
#include <ctime>
#include <regex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "api/serve_test_util.h"

namespace ll::testing {
namespace {

using nlohmann::json;

class OpenAiWireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    config_ = TestConfig(dir_, "spot-all",
                         "[gateway]\nmeter_flush_ms = 5\n[[gateway.sim_models]]\nmodel = \"m\"\nreplicas = 2\n"
                         "gpus_per_replica = 0\ntokens_per_s = 0\nfirst_token_ms = 0\n");
    server_.Start(config_);
    key_ = NewTenantKey(server_, "acme", &tenant_);
    auto r = server_.Client(kAdminKey).Request("POST", "/admin/credits",
                                               json{{"tenant_id", tenant_}, {"amount", "1.00"}}.dump());
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->status, 200) << r->body;
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Stop(), 0);
    }
    std::system(("rm -rf " + dir_).c_str());
  }
  cli::HttpResponse Send(const std::string& method, const std::string& path, const std::string& body = "",
                         const std::string& key = "") {
    auto r = server_.Client(key.empty() ? key_ : key).Request(method, path, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cli::HttpResponse{};
  }
  static json Chat(int max_tokens) {
    return {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hello"}}}}, {"max_tokens", max_tokens}};
  }
  // The tenant's token usage records, once the group commit has run (meter_flush_ms = 5).
  std::vector<json> TokenUsage() {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::vector<json> out;
    const json all = Json(Send("GET", "/v1/usage"));
    for (const json& u : all["data"]) {
      if (u["source"] == "tokens") out.push_back(u);
    }
    return out;
  }

  std::string dir_, config_, key_, tenant_;
  ServeProcess server_;
};

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

bool RandomCompletionId(const std::string& id) {
  static const std::regex re("(chatcmpl|cmpl)-[0-9a-f]{32}");
  return std::regex_match(id, re);
}

TEST_F(OpenAiWireTest, CreatedIsTheAnswersTime) {
  const int64_t before = Now();
  json a = Json(Send("POST", "/v1/chat/completions", Chat(2).dump()));
  ASSERT_TRUE(a.contains("created")) << a.dump();
  EXPECT_GE(a["created"].get<int64_t>(), before);
  EXPECT_LE(a["created"].get<int64_t>(), Now());
  EXPECT_TRUE(RandomCompletionId(a["id"])) << a["id"];
  // Once the wall clock's second has moved on, a new answer says so.
  const int64_t first = a["created"];
  while (Now() <= first) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  json b = Json(Send("POST", "/v1/completions", json{{"model", "m"}, {"prompt", "hi"}, {"max_tokens", 2}}.dump()));
  EXPECT_GT(b["created"].get<int64_t>(), first) << b.dump();
  EXPECT_TRUE(RandomCompletionId(b["id"])) << b["id"];
  // The models: registered when the server started, not 1970.
  json models = Json(Send("GET", "/v1/models"));
  ASSERT_EQ(models["data"].size(), 1u) << models.dump();
  EXPECT_GE(models["data"][0]["created"].get<int64_t>(), before - 60);
  EXPECT_LE(models["data"][0]["created"].get<int64_t>(), first);
}

TEST_F(OpenAiWireTest, CompletionIdsAreUniqueAcrossRequestsAndRestarts) {
  std::set<std::string> ids;
  auto chat = [&] { return Json(Send("POST", "/v1/chat/completions", Chat(1).dump()))["id"].get<std::string>(); };
  // Two at once (each of the two replicas answers one).
  std::string a, b;
  std::thread t1([&] { a = chat(); });
  std::thread t2([&] { b = chat(); });
  t1.join();
  t2.join();
  ids.insert(a);
  ids.insert(b);
  // Two restarts: the replicas start afresh each time.
  for (int restart = 0; restart < 2; ++restart) {
    ASSERT_EQ(server_.Stop(), 0);
    server_.Start(config_);
    ids.insert(chat());
    ids.insert(chat());
  }
  EXPECT_EQ(ids.size(), 6u);
  for (const std::string& id : ids) EXPECT_TRUE(RandomCompletionId(id)) << id;
}

TEST_F(OpenAiWireTest, NChoicesAreAnsweredAndBilled) {
  json body = Chat(3);
  body["n"] = 2;
  json r = Json(Send("POST", "/v1/chat/completions", body.dump()));
  ASSERT_EQ(r["choices"].size(), 2u) << r.dump();
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][1]["index"], 1);
  EXPECT_EQ(r["usage"]["completion_tokens"], 6);
  // Streamed: each choice's chunks.
  body["stream"] = true;
  cli::HttpResponse s = Send("POST", "/v1/chat/completions", body.dump());
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_NE(s.body.find(R"("index":1)"), std::string::npos) << s.body;
  int64_t output = 0;
  for (const json& u : TokenUsage()) {
    if (u["kind"] == "output_tokens") output += u["quantity"].get<int64_t>();
  }
  EXPECT_EQ(output, 12);
  // Out of range: 400 naming `n`.
  body["n"] = 0;
  cli::HttpResponse bad = Send("POST", "/v1/chat/completions", body.dump());
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Json(bad)["error"]["param"], "n");
}

TEST_F(OpenAiWireTest, MistypedFieldsAreRefusedNamingThemAndCostNothing) {
  const std::string chat = R"("model":"m","messages":[{"role":"user","content":"hi"}])";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"stream":"yes",)" + chat + "}", "stream"},
      {R"({"temperature":"hot",)" + chat + "}", "temperature"},
      {R"({"temperature":2.5,)" + chat + "}", "temperature"},
      {R"({"top_p":-0.1,)" + chat + "}", "top_p"},
      {R"({"presence_penalty":"x",)" + chat + "}", "presence_penalty"},
      {R"({"frequency_penalty":3,)" + chat + "}", "frequency_penalty"},
      {R"({"max_tokens":0,)" + chat + "}", "max_tokens"},
      {R"({"max_completion_tokens":"8",)" + chat + "}", "max_completion_tokens"},
      {R"({"stop":[1],)" + chat + "}", "stop[0]"},
      {R"({"stop":{"a":1},)" + chat + "}", "stop"},
      {R"({"stream_options":{"include_usage":"yes"},"stream":true,)" + chat + "}", "stream_options.include_usage"},
      {R"({"stream_options":[],)" + chat + "}", "stream_options"},
      {R"({"user":5,)" + chat + "}", "user"},
      {R"({"seed":1.5,)" + chat + "}", "seed"},
      {R"({"logprobs":"yes",)" + chat + "}", "logprobs"},
      {R"({"logit_bias":{"50256":"x"},)" + chat + "}", "logit_bias.50256"},
      {R"({"tools":{},)" + chat + "}", "tools"},
      {R"({"model":7,"messages":[{"role":"user","content":"hi"}]})", "model"},
      {R"({"model":"m","messages":[{"role":"wizard","content":"hi"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content"},
      {R"({"stream":false,"stream":true,)" + chat + "}", "stream"},
  };
  for (const auto& [body, param] : cases) {
    cli::HttpResponse r = Send("POST", "/v1/chat/completions", body);
    EXPECT_EQ(r.status, 400) << body << " → " << r.body;
    json e = Json(r)["error"];
    EXPECT_EQ(e["param"], param) << body << " → " << r.body;
    EXPECT_EQ(e["type"], "invalid_request_error") << r.body;
  }
  // The legacy completions' own types.
  cli::HttpResponse lp = Send("POST", "/v1/completions", R"({"model":"m","prompt":"hi","logprobs":true})");
  EXPECT_EQ(lp.status, 400) << lp.body;
  EXPECT_EQ(Json(lp)["error"]["param"], "logprobs");
  cli::HttpResponse bo = Send("POST", "/v1/completions", R"({"model":"m","prompt":"hi","n":3,"best_of":2})");
  EXPECT_EQ(bo.status, 400) << bo.body;
  EXPECT_EQ(Json(bo)["error"]["param"], "best_of");
  cli::HttpResponse es = Send("POST", "/v1/embeddings", R"({"model":"m","input":"hi","stream":"yes"})");
  EXPECT_EQ(es.status, 400) << es.body;
  EXPECT_EQ(Json(es)["error"]["param"], "stream");
  cli::HttpResponse ef = Send("POST", "/v1/embeddings", R"({"model":"m","input":"hi","encoding_format":"png"})");
  EXPECT_EQ(ef.status, 400) << ef.body;
  EXPECT_EQ(Json(ef)["error"]["param"], "encoding_format");
  // Nothing held, nothing billed.
  EXPECT_TRUE(TokenUsage().empty());
  json balance = Json(Send("GET", "/v1/balance"));
  EXPECT_EQ(balance["held"], "0.00") << balance.dump();
  EXPECT_EQ(balance["charged"], "0.00") << balance.dump();
  // Well-typed, they pass (nulls as if absent; fields the gateway does not know go on as they are).
  json good = Chat(2);
  good.update(json{{"temperature", 0.7}, {"top_p", 1}, {"stop", {"\n", "END"}}, {"user", "u1"}, {"seed", 42},
                   {"presence_penalty", -1.5}, {"frequency_penalty", nullptr}, {"logprobs", false},
                   {"logit_bias", {{"50256", -100}}}, {"top_k", 40}, {"stream", false}});
  cli::HttpResponse ok = Send("POST", "/v1/chat/completions", good.dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(OpenAiWireTest, ModelById) {
  cli::HttpResponse r = Send("GET", "/v1/models/m");
  ASSERT_EQ(r.status, 200) << r.body;
  json m = Json(r);
  EXPECT_EQ(m["id"], "m");
  EXPECT_EQ(m["object"], "model");
  EXPECT_EQ(m["created"], Json(Send("GET", "/v1/models"))["data"][0]["created"]);
  cli::HttpResponse missing = Send("GET", "/v1/models/nope");
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_EQ(Json(missing)["error"]["code"], "model_not_found");
  EXPECT_EQ(Send("GET", "/v1/models/m", "", "ll_wrong").status, 401);
}

TEST_F(OpenAiWireTest, Unauthorized401IsTheSameOnEveryApi) {
  std::set<std::string> types, codes;
  for (const auto& [method, path, body] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"POST", "/v1/chat/completions", Chat(1).dump()},
           {"GET", "/v1/models", ""},
           {"GET", "/v1/leases", ""},
           {"POST", "/v1/leases", R"({"gpus":8})"}}) {
    cli::HttpResponse r = Send(method, path, body, "ll_wrong");
    EXPECT_EQ(r.status, 401) << path;
    types.insert(Json(r)["error"]["type"].get<std::string>());
    codes.insert(Json(r)["error"]["code"].get<std::string>());
  }
  EXPECT_EQ(types, std::set<std::string>{"invalid_request_error"});
  EXPECT_EQ(codes, std::set<std::string>{"invalid_api_key"});
}

}  // namespace
}  // namespace ll::testing
