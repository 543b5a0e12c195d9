// What the route filter reads in upstream answers (gateway/upstream_event.h), on responses
// recorded from a real llama.cpp `llama-server` (tests/gateway/fixtures/llama_server, written
// by `LL_RECORD_FIXTURES=1 tests/engine/run.sh`) and on the shapes other engines send.
#include "gateway/upstream_event.h"

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

// The events of a stream, each up to and including its blank line (as the route filter cuts
// them).
std::vector<std::string> Events(const std::string& body) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t end = body.find("\n\n"); end != std::string::npos; end = body.find("\n\n", start)) {
    out.push_back(body.substr(start, end + 2 - start));
    start = end + 2;
  }
  return out;
}

TEST(UpstreamEvent, LlamaServerPlainAnswerBillsItsOwnUsage) {
  const std::string body = Fixture("chat.json");
  const json parsed = json::parse(body);
  ASSERT_TRUE(parsed.contains("timings"));  // the extra object llama.cpp adds
  const std::optional<UpstreamUsage> u = ReadUsage(body);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, parsed["usage"]["prompt_tokens"].get<int64_t>());
  EXPECT_EQ(u->completion_tokens, parsed["usage"]["completion_tokens"].get<int64_t>());
  EXPECT_GT(u->completion_tokens, 0);
}

TEST(UpstreamEvent, LlamaServerStreamNullFirstContentUsageChunkWithNoChoices) {
  const std::vector<std::string> events = Events(Fixture("chat_stream.sse"));
  ASSERT_GE(events.size(), 4u);
  // The first delta names the role with `content: null`: no tokens.
  const json first = json::parse(EventData(events.front()));
  ASSERT_TRUE(first["choices"][0]["delta"].contains("content"));
  EXPECT_TRUE(first["choices"][0]["delta"]["content"].is_null());
  EXPECT_FALSE(ClassifyStreamEvent(EventData(events.front())).has_tokens);

  int64_t with_tokens = 0, usage_chunks = 0;
  UpstreamUsage usage;
  for (const std::string& ev : events) {
    const StreamEvent e = ClassifyStreamEvent(EventData(ev));
    if (e.done) {
      EXPECT_EQ(&ev, &events.back()) << "[DONE] is the last event";
      continue;
    }
    const json chunk = json::parse(EventData(ev));
    EXPECT_EQ(e.usage_only, chunk["choices"].empty()) << ev;
    EXPECT_EQ(e.usage.has_value(), chunk.contains("usage") && chunk["usage"].is_object()) << ev;
    bool text = false;
    for (const json& c : chunk["choices"]) {
      const json& d = c["delta"];
      text = text || (d.contains("content") && d["content"].is_string() && !d["content"].get<std::string>().empty());
    }
    EXPECT_EQ(e.has_tokens, text) << ev;
    with_tokens += e.has_tokens ? 1 : 0;
    if (e.usage_only) {
      ++usage_chunks;
      usage = *e.usage;
      EXPECT_EQ(usage.completion_tokens, chunk["usage"]["completion_tokens"].get<int64_t>());
      EXPECT_EQ(usage.prompt_tokens, chunk["usage"]["prompt_tokens"].get<int64_t>());
    }
  }
  EXPECT_TRUE(ClassifyStreamEvent(EventData(events.back())).done);
  EXPECT_EQ(usage_chunks, 1);
  EXPECT_GT(usage.prompt_tokens, 0);
  // No more text chunks than the tokens the engine counts (one token may print as nothing).
  EXPECT_GE(usage.completion_tokens, with_tokens);
  EXPECT_GT(with_tokens, 0);
}

TEST(UpstreamEvent, OtherEnginesShapes) {
  // vLLM with include_usage: `"usage":null` on every chunk, then the usage chunk.
  StreamEvent e = ClassifyStreamEvent(
      R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null})");
  EXPECT_TRUE(e.has_tokens);
  EXPECT_FALSE(e.usage.has_value());
  EXPECT_FALSE(e.usage_only);
  // Spaces after the colons, nested details in usage.
  e = ClassifyStreamEvent(
      R"({"choices": [ ], "usage": {"prompt_tokens": 12, "prompt_tokens_details": {"cached_tokens": 8},)"
      R"( "completion_tokens": 3, "total_tokens": 15}})");
  ASSERT_TRUE(e.usage.has_value());
  EXPECT_TRUE(e.usage_only);
  EXPECT_EQ(e.usage->prompt_tokens, 12);
  EXPECT_EQ(e.usage->completion_tokens, 3);
  EXPECT_FALSE(e.has_tokens);
  // Usage on a chunk that also has a choice (continuous usage stats): not the usage chunk.
  e = ClassifyStreamEvent(R"({"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}})");
  EXPECT_TRUE(e.has_tokens);
  EXPECT_FALSE(e.usage_only);
  ASSERT_TRUE(e.usage.has_value());
  // Empty deltas, the finish chunk, role only: no tokens. Tool calls, reasoning, completions' text: tokens.
  EXPECT_FALSE(ClassifyStreamEvent(R"({"choices":[{"delta":{},"finish_reason":"stop"}]})").has_tokens);
  EXPECT_FALSE(ClassifyStreamEvent(R"({"choices":[{"delta":{"role":"assistant","content":""}}]})").has_tokens);
  EXPECT_TRUE(ClassifyStreamEvent(R"({"choices":[{"delta":{"tool_calls":[{"index":0}]}}]})").has_tokens);
  EXPECT_TRUE(ClassifyStreamEvent(R"({"choices":[{"delta":{"reasoning_content":"so"}}]})").has_tokens);
  EXPECT_TRUE(ClassifyStreamEvent(R"({"choices":[{"text":"tok ","finish_reason":null}]})").has_tokens);
  // A value that happens to spell a key is not that key; an escaped quote is text.
  EXPECT_FALSE(ClassifyStreamEvent(R"({"choices":[{"delta":{"role":"content"}}]})").has_tokens);
  EXPECT_TRUE(ClassifyStreamEvent(R"({"choices":[{"delta":{"content":"\""}}]})").has_tokens);
  EXPECT_TRUE(ClassifyStreamEvent("[DONE]").done);
  EXPECT_EQ(EventData("data: [DONE]\r\n\r\n"), "[DONE]");
  EXPECT_EQ(EventData(": keep-alive\n\n"), "");
}

TEST(UpstreamEvent, UsageThatIsNotAnObjectOrNotJson) {
  EXPECT_FALSE(ReadUsage(R"({"usage":null})").has_value());
  EXPECT_FALSE(ReadUsage(R"({"choices":[]})").has_value());
  EXPECT_FALSE(ReadUsage(R"({"usage":{"prompt_tokens":"many"}})").has_value());
  EXPECT_FALSE(ReadUsage(R"({"usage":{)").has_value());
  const std::optional<UpstreamUsage> u = ReadUsage(R"({"usage":{"prompt_tokens":-4,"completion_tokens":2}})");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 0);
  EXPECT_EQ(u->completion_tokens, 2);
}

TEST(UpstreamEvent, LlamaServerModelsListHasModelsAndData) {
  // The gateway answers /v1/models itself; this pins the engine's shape for replica discovery.
  const json models = json::parse(Fixture("models.json"));
  EXPECT_TRUE(models["models"].is_array());
  ASSERT_TRUE(models["data"].is_array());
  EXPECT_EQ(models["data"][0]["object"], "model");
}

}  // namespace
}  // namespace ll::gateway
