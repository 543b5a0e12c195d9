// The Responses API's translation (gateway/responses.h): requests to chat completions, and a
// real llama-server's answers (tests/gateway/fixtures/llama_server) back to a Response object
// and to the Responses stream's events, in the shapes the official `openai` SDK reads.
#include "gateway/responses.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "llama_fixture.h"

namespace ll::gateway {
namespace {

using nlohmann::json;

// Translates `body`; the chat body as JSON (null on error, `error` says why).
json Chat(const std::string& body, ResponsesRequest* req, ParseError* error) {
  auto r = ResponsesToChat(body, req, error);
  return r.ok() ? json::parse(*r) : json();
}

// The (event name, data) of each event in `sse`.
std::vector<std::pair<std::string, json>> Events(const std::string& sse) {
  std::vector<std::pair<std::string, json>> out;
  size_t start = 0;
  for (size_t end = sse.find("\n\n"); end != std::string::npos; end = sse.find("\n\n", start)) {
    const std::string e = sse.substr(start, end - start);
    start = end + 2;
    const size_t nl = e.find('\n');
    EXPECT_EQ(e.rfind("event: ", 0), 0u) << e;
    EXPECT_EQ(e.compare(nl + 1, 6, "data: "), 0) << e;
    out.emplace_back(e.substr(7, nl - 7), json::parse(e.substr(nl + 7)));
  }
  return out;
}

ResponsesRequest Req() {
  ResponsesRequest r;
  r.id = "resp_1";
  r.message_id = "msg_1";
  r.created_at = 1'700'000'000;
  return r;
}

TEST(Responses, AStringInputIsOneUserMessageAndTheOptionsMapToChat) {
  ResponsesRequest req = Req();
  ParseError pe;
  json chat = Chat(R"({"model":"m","input":"hi","instructions":"be brief","max_output_tokens":7,"temperature":0.5,
                       "top_p":0.9,"stream":true,"user":"u1","store":true,"metadata":{"k":"v"},"top_k":40})",
                   &req, &pe);
  ASSERT_FALSE(chat.is_null()) << pe.message;
  EXPECT_EQ(chat["model"], "m");
  EXPECT_EQ(chat["messages"], json::parse(R"([{"role":"system","content":"be brief"},{"role":"user","content":"hi"}])"));
  EXPECT_EQ(chat["max_tokens"], 7);
  EXPECT_EQ(chat["temperature"], 0.5);
  EXPECT_EQ(chat["top_p"], 0.9);
  EXPECT_EQ(chat["stream"], true);
  EXPECT_EQ(chat["user"], "u1");
  EXPECT_EQ(chat["top_k"], 40) << "a server's own fields pass, as on chat";
  EXPECT_FALSE(chat.contains("store"));
  EXPECT_FALSE(chat.contains("metadata"));
  EXPECT_FALSE(chat.contains("instructions"));
  EXPECT_EQ(req.echo["metadata"], json::parse(R"({"k":"v"})"));
  EXPECT_EQ(req.echo["max_output_tokens"], 7);
}

TEST(Responses, MessageItemsAndTextPartsBecomeChatMessages) {
  ResponsesRequest req = Req();
  ParseError pe;
  json chat = Chat(R"({"model":"m","input":[
      {"role":"developer","content":"rules"},
      {"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]},
      {"role":"assistant","content":[{"type":"output_text","text":"c","annotations":[]}]}],
      "text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object"},"strict":true}}})",
                   &req, &pe);
  ASSERT_FALSE(chat.is_null()) << pe.message;
  EXPECT_EQ(chat["messages"], json::parse(R"([{"role":"system","content":"rules"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":[{"type":"text","text":"c"}]}])"));
  EXPECT_EQ(chat["response_format"],
            json::parse(R"({"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"},"strict":true}})"));
  EXPECT_FALSE(chat.contains("max_tokens")) << "no limit given: the gateway's default is added later, as on chat";
}

TEST(Responses, WhatCannotBeTranslatedIsRefusedNamingTheField) {
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"input":"hi"})", "model"},
      {R"({"model":"m"})", "input"},
      {R"({"model":"m","input":[]})", "input"},
      {R"({"model":"m","input":[{"role":"user","content":"a"},{"type":"function_call_output","call_id":"c"}]})", "input[1].type"},
      {R"({"model":"m","input":[{"role":"tool","content":"a"}]})", "input[0].role"},
      {R"({"model":"m","input":[{"role":"user"}]})", "input[0].content"},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"x"}]}]})", "input[0].content[0].type"},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_text"}]}]})", "input[0].content[0].text"},
      {R"({"model":"m","input":"a","tools":[{"type":"function","name":"f"}]})", "tools"},
      {R"({"model":"m","input":"a","previous_response_id":"resp_x"})", "previous_response_id"},
      {R"({"model":"m","input":"a","background":true})", "background"},
      {R"({"model":"m","input":"a","max_output_tokens":0})", "max_output_tokens"},
      {R"({"model":"m","input":"a","max_output_tokens":"8"})", "max_output_tokens"},
      {R"({"model":"m","input":"a","stream":"yes"})", "stream"},
      {R"({"model":"m","input":"a","temperature":"hot"})", "temperature"},
      {R"({"model":"m","input":"a","messages":[]})", "messages"},
      {R"({"model":"m","input":"a","text":{"format":{"type":"xml"}}})", "text.format.type"},
      {R"({"model":"m","input":"a","metadata":[1]})", "metadata"},
      {R"(["not an object"])", ""},
      {R"({"model":"m","input":)", ""},
  };
  for (const Case& c : cases) {
    ResponsesRequest req = Req();
    ParseError pe;
    EXPECT_FALSE(ResponsesToChat(c.body, &req, &pe).ok()) << c.body;
    EXPECT_EQ(pe.param, c.param) << c.body << " → " << pe.message;
    EXPECT_FALSE(pe.message.empty());
  }
}

TEST(Responses, ALlamaServerAnswerBecomesAResponseWithTheBilledUsage) {
  ResponsesRequest req = Req();
  ParseError pe;
  ASSERT_TRUE(ResponsesToChat(R"({"model":"random-llama","input":"hi","max_output_tokens":8})", &req, &pe).ok());
  const json chat = json::parse(Fixture("chat.json"));
  const json r = json::parse(ChatToResponse(Fixture("chat.json"), req, {.prompt_tokens = 20, .completion_tokens = 8}));
  EXPECT_EQ(r["id"], "resp_1");
  EXPECT_EQ(r["object"], "response");
  EXPECT_EQ(r["created_at"], 1'700'000'000);
  EXPECT_EQ(r["model"], "random-llama");
  EXPECT_EQ(r["max_output_tokens"], 8);
  // The fixture stopped at its token limit: OpenAI calls that incomplete.
  EXPECT_EQ(r["status"], "incomplete");
  EXPECT_EQ(r["incomplete_details"]["reason"], "max_output_tokens");
  ASSERT_EQ(r["output"].size(), 1u);
  const json& msg = r["output"][0];
  EXPECT_EQ(msg["type"], "message");
  EXPECT_EQ(msg["id"], "msg_1");
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["content"][0]["type"], "output_text");
  EXPECT_EQ(msg["content"][0]["text"], chat["choices"][0]["message"]["content"]);
  EXPECT_EQ(r["usage"], json::parse(R"({"input_tokens":20,"input_tokens_details":{"cached_tokens":0},"output_tokens":8,
      "output_tokens_details":{"reasoning_tokens":0},"total_tokens":28})"));

  const json done = json::parse(
      ChatToResponse(R"({"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]})", req,
                     {.prompt_tokens = 3, .completion_tokens = 1}));
  EXPECT_EQ(done["status"], "completed");
  EXPECT_TRUE(done["incomplete_details"].is_null());
  EXPECT_EQ(done["output"][0]["status"], "completed");
}

TEST(Responses, ALlamaServerStreamBecomesTheResponsesEvents) {
  ResponsesRequest req = Req();
  ParseError pe;
  ASSERT_TRUE(ResponsesToChat(R"({"model":"random-llama","input":"hi","stream":true})", &req, &pe).ok());
  ResponsesStream s(&req);
  std::string sse = s.Start();
  std::string text;
  const std::string upstream = Fixture("chat_stream.sse");
  size_t start = 0;
  int deltas = 0;
  for (size_t end = upstream.find("\n\n"); end != std::string::npos; end = upstream.find("\n\n", start)) {
    const std::string data = upstream.substr(start + 6, end - start - 6);  // after "data: "
    start = end + 2;
    const std::string out = s.OnChunk(data);
    if (!out.empty()) ++deltas;
    sse += out;
    if (data == "[DONE]") continue;
    const json c = json::parse(data);
    if (!c["choices"].empty() && c["choices"][0]["delta"].value("content", json()).is_string()) {
      text += c["choices"][0]["delta"]["content"].get<std::string>();
    }
  }
  sse += s.Complete({.prompt_tokens = 20, .completion_tokens = 8});
  const auto events = Events(sse);
  std::vector<std::string> types;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].second["type"], events[i].first);
    EXPECT_EQ(events[i].second["sequence_number"], i);
    if (types.empty() || types.back() != events[i].first) types.push_back(events[i].first);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"response.created", "response.in_progress", "response.output_item.added",
                                             "response.content_part.added", "response.output_text.delta",
                                             "response.output_text.done", "response.content_part.done",
                                             "response.output_item.done", "response.incomplete"}));
  EXPECT_EQ(deltas, 8) << "one delta per chunk with text: not the role-only first one, the finish or usage chunks";
  std::string joined;
  for (const auto& [type, data] : events) {
    if (type == "response.output_text.delta") joined += data["delta"].get<std::string>();
  }
  EXPECT_EQ(joined, text);
  EXPECT_EQ(events[0].second["response"]["status"], "in_progress");
  EXPECT_TRUE(events[0].second["response"]["usage"].is_null());
  const json& last = events.back().second["response"];
  EXPECT_EQ(last["status"], "incomplete");
  EXPECT_EQ(last["usage"]["input_tokens"], 20);
  EXPECT_EQ(last["usage"]["output_tokens"], 8);
  EXPECT_EQ(last["output"][0]["content"][0]["text"], text);
  EXPECT_EQ(events[events.size() - 4].second["text"], text);
}

TEST(Responses, AFailedStreamEndsWithAnErrorEventTheSdkRaises) {
  ResponsesRequest req = Req();
  ResponsesStream s(&req);
  const auto events = Events(s.Start() + s.Error("upstream_failed", "the replica died"));
  const json& e = events.back().second;
  EXPECT_EQ(events.back().first, "error");
  EXPECT_EQ(e["type"], "error");
  EXPECT_EQ(e["code"], "upstream_failed");
  EXPECT_EQ(e["message"], "the replica died");
  EXPECT_TRUE(e["param"].is_null());
  // The openai SDK throws an APIError for an event whose data has `error`.
  EXPECT_EQ(e["error"]["code"], "upstream_failed");
  EXPECT_EQ(e["error"]["type"], "server_error");
  EXPECT_EQ(s.Complete({.prompt_tokens = 1, .completion_tokens = 1}), "") << "no completion after an error";
}

TEST(Responses, AnEngineErrorInTheStreamBecomesTheErrorEvent) {
  // What llama-server sends when the random model's output breaks its chat template's parser.
  ResponsesRequest req = Req();
  ResponsesStream s(&req);
  s.Start();
  EXPECT_FALSE(s.OnChunk(R"({"choices":[{"index":0,"delta":{"content":"a"}}]})").empty());
  const auto events = Events(s.OnChunk(
      R"({"error":{"code":500,"message":"The model produced output that does not match the expected peg-native format","type":"server_error"}})"));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].first, "error");
  EXPECT_EQ(events[0].second["code"], "upstream_failed");
  EXPECT_NE(events[0].second["message"].get<std::string>().find("peg-native"), std::string::npos);
  EXPECT_EQ(s.Complete({.prompt_tokens = 1, .completion_tokens = 1}), "");
}

}  // namespace
}  // namespace ll::gateway
