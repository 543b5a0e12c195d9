// What the route filter reads in an upstream's answer: the `usage` object of a response body
// or stream chunk, and what kind of server-sent event a stream chunk is. Pure functions on
// bytes, tested on responses recorded from real engines (tests/gateway/fixtures/llama_server).
//
// Real engines differ from the simulated replica in ways this has to take: llama.cpp's
// `llama-server` opens a stream with a delta of `"role":"assistant","content":null` (no
// token), closes the choice with an empty delta and a `finish_reason`, sends its usage in a
// last chunk with `"choices":[]` (with an extra `timings` object, as on every answer), and
// nests objects in `usage` (`prompt_tokens_details`). vLLM sends `"usage":null` on every chunk.
// A stream event is scanned, not parsed, unless it names a usage object: this runs on every
// chunk of every stream.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ll::gateway {

// An upstream's own token counts for one answer.
struct UpstreamUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// The `usage` object's counts in a JSON response body or stream chunk; nullopt if it has none
// (absent, null, not an object, or not JSON). Negative counts read as 0; other members of
// `usage` (nested objects too) are ignored.
std::optional<UpstreamUsage> ReadUsage(std::string_view json);

// The data of one server-sent event ("" if none): the `data:` field without the space after
// the colon or the line end. `event` is one event, up to and including its blank line.
std::string_view EventData(std::string_view event);

// One stream event's data, classified.
struct StreamEvent {
  bool done = false;        // `[DONE]`
  bool usage_only = false;  // the usage chunk: a usage object and `"choices":[]`
  // Carries generated text: a choice's delta (or, for completions, `text`) has a non-empty
  // `content`, `reasoning_content`, `refusal` or `text`, or `tool_calls`. The role-only first
  // delta and the finish_reason-only last one carry none.
  bool has_tokens = false;
  std::optional<UpstreamUsage> usage;
};

// Classifies the data of one event (EventData's result).
StreamEvent ClassifyStreamEvent(std::string_view data);

}  // namespace ll::gateway
