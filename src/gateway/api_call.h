// What the gateway reads of an OpenAI-style request body, parsed on demand with simdjson: only
// the fields the filters need (model, stream, token limits, the prompt's size and first bytes),
// never a DOM of the whole body. The other fields of the OpenAI API are type-checked (what is
// forwarded must be what the API allows: no `"stream": "yes"` or `"temperature": "hot"`
// reaching a replica); fields it does not know pass. And the one rewrite it makes before
// sending it upstream.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace ll::gateway {

enum class Endpoint { kChatCompletions, kCompletions, kEmbeddings };

// "/v1/chat/completions", ...
std::string_view EndpointPath(Endpoint e);

struct ApiCall {
  Endpoint endpoint = Endpoint::kChatCompletions;
  std::string model;
  bool stream = false;
  bool client_wants_usage = false;  // `stream_options.include_usage` as the client sent it
  int64_t max_tokens = -1;          // `max_tokens` / `max_completion_tokens`; -1 when absent
  int64_t n = 1;                    // choices asked for
  int64_t best_of = 0;              // completions generated to pick `n` from; 0: not given
  int64_t messages = 0;             // chat messages, or prompts / inputs
  int64_t prompt_bytes = 0;         // bytes of prompt text (message contents, prompt, input)
  int64_t prompt_token_ids = 0;     // prompts given as token ids count one token each
  int64_t body_bytes = 0;           // the whole body: tools, schemas and all reach the model
  uint64_t prefix_hash = 0;         // of the first `prefix_bytes` of the prompt text
  // The top-level `stream_options` member's byte span in the body ([begin, end)), if any.
  size_t stream_options_begin = std::string::npos;
  size_t stream_options_end = std::string::npos;

  // Completions the model generates (each up to the token limit): what a budget holds for.
  int64_t Generated() const { return n > best_of ? n : best_of; }
  // The prompt tokens to count against a tokens-per-minute limit before the upstream says:
  // about four bytes a token.
  int64_t EstimatedPromptTokens() const;
  // An upper bound on the prompt tokens whatever the tokenizer (a token is at least a byte): the
  // whole body (tool schemas and all) plus the chat template's tokens per message; what a
  // budget holds before the request.
  int64_t WorstPromptTokens() const;
};

struct ParseError {
  std::string message;
  std::string param;  // the field, OpenAI-style
  std::string code = "invalid_value";
};

// Parses and validates `body` for `endpoint` (errors name the field in `error->param`);
// hashes the first `prefix_bytes` of the prompt text.
Result<ApiCall> ParseApiCall(Endpoint endpoint, std::string_view body, size_t prefix_bytes, ParseError* error);

// The body to send upstream: a streamed request always asks for usage
// (`"stream_options":{"include_usage":true}`, replacing what the client sent), a non-streamed
// one loses `stream_options` (some servers reject it there), and a completion without a token
// limit gets `"max_tokens": default_max_tokens` (what its budget held: an upstream would
// otherwise generate to the end of its context). Other bytes are kept as they are.
std::string UpstreamBody(std::string_view body, const ApiCall& call, int64_t default_max_tokens);

}  // namespace ll::gateway
