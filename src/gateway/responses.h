// The Responses API (`POST /v1/responses`, OpenAI's newer surface that current SDKs and the
// Vercel AI SDK call first), served by the replicas' chat completions: the request is
// translated to a chat completions body before the filters that limit, hold and route it (so it
// is metered, limited and billed exactly like chat), and the replica's answer is translated
// back: a whole chat completion into a Response object, a chat stream into the Responses
// stream's events:
//
//   response.created, response.in_progress, response.output_item.added,
//   response.content_part.added, response.output_text.delta (one per chunk with text),
//   response.output_text.done, response.content_part.done, response.output_item.done, then
//   response.completed (or response.incomplete when `max_output_tokens` cut it short) whose
//   `response.usage` is what was billed; a failure after the first byte: an `error` event.
//
// Each event is `event: TYPE` + `data: {"type": TYPE, "sequence_number": N, ...}`. The error
// event carries OpenAI's fields (`code`, `message`, `param`) and also an `error` object: the
// official `openai` SDKs raise an APIError on a stream event whose data has `error`, and would
// otherwise hand the failure on as one more event.
//
// What is translated: `input` (a string, or messages with string content or `input_text` /
// `output_text` parts; roles user, assistant, system, developer), `instructions` (a first system
// message), `max_output_tokens`, `temperature`, `top_p`, `user`, `text.format` (text,
// json_object, json_schema: `response_format`), `stream`; fields of no meaning here
// (`store`, `metadata`, `reasoning`, `truncation`, `parallel_tool_calls`, `include`, ...) are
// accepted and not forwarded; fields the Responses API does not have pass to the replica as
// they are (like chat's). Refused with 400 naming the field: tools, other input item types
// (images, files, function calls), `previous_response_id` and `background` (responses are not
// stored).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "gateway/api_call.h"
#include "gateway/upstream_event.h"

namespace ll::gateway {

// What the answer echoes of the request, and its ids.
struct ResponsesRequest {
  std::string id;          // resp_…
  std::string message_id;  // msg_…: the one output message
  int64_t created_at = 0;  // unix seconds
  // The request's own fields, as the Response object shows them (null when not given, as
  // OpenAI's; temperature and top_p: 1 when not given).
  nlohmann::ordered_json echo = nlohmann::ordered_json::object();
};

// The chat completions body for the Responses request `body`; fills `out->echo`. Errors name
// the field in `error->param` (`input[1].content[0].type`).
Result<std::string> ResponsesToChat(std::string_view body, ResponsesRequest* out, ParseError* error);

// A replica's whole chat completion → the Response object (`usage`: `billed`, what the meter
// charged). A body that is not a chat completion gives a Response with no output.
std::string ChatToResponse(std::string_view chat_body, const ResponsesRequest& req, const UpstreamUsage& billed);

// A chat stream → the Responses stream's events, one call per upstream event.
class ResponsesStream {
 public:
  explicit ResponsesStream(const ResponsesRequest* req) : req_(req) {}
  // The opening events (created, in_progress, the output item and its text part).
  std::string Start();
  // The events for one chat chunk's data: a text delta if it carries text; a finish_reason is
  // remembered. Usage-only chunks and `[DONE]` give nothing; an engine's error object in the
  // stream gives an error event (and Complete nothing after it).
  std::string OnChunk(std::string_view data);
  // The closing events, ending with response.completed (or .incomplete) carrying `billed`;
  // nothing after an error event.
  std::string Complete(const UpstreamUsage& billed);
  // An error event (the stream then ends; Complete gives nothing after it).
  std::string Error(std::string_view code, std::string_view message);

 private:
  std::string Event(std::string_view type, nlohmann::ordered_json data);
  nlohmann::ordered_json Response(std::string_view status, const UpstreamUsage* usage) const;

  const ResponsesRequest* req_;
  int64_t sequence_ = 0;
  std::string text_;
  std::string finish_reason_;
  bool failed_ = false;
};

}  // namespace ll::gateway
