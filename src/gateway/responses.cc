#include "gateway/responses.h"

#include <array>

#include <fmt/format.h>

#include "core/json_depth.h"

namespace ll::gateway {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr auto kDumpErrors = json::error_handler_t::replace;  // invalid UTF-8 never throws

// Responses fields with no meaning for a stateless gateway: accepted, not forwarded.
constexpr std::array<std::string_view, 12> kIgnored = {
    "store",          "metadata",   "reasoning",        "truncation",       "parallel_tool_calls", "include",
    "service_tier",   "top_logprobs", "prompt_cache_key", "safety_identifier", "stream_options",   "max_tool_calls"};
// Chat fields that the translation writes itself: a Responses request names them otherwise.
constexpr std::array<std::string_view, 6> kChatOnly = {"messages", "max_tokens", "max_completion_tokens",
                                                       "response_format", "n", "prompt"};

bool In(std::string_view key, const auto& set) {
  for (std::string_view k : set) {
    if (k == key) return true;
  }
  return false;
}

// Fails the translation: `error` names the field.
Status Fail(ParseError* error, std::string param, std::string message, std::string code = "invalid_value") {
  error->param = std::move(param);
  error->message = std::move(message);
  error->code = std::move(code);
  return Status::Invalid(error->message);
}

// One input message's content: a string, or `input_text` / `output_text` parts as chat text parts.
Status TranslateContent(const json& content, const std::string& at, ojson* out, ParseError* error) {
  if (content.is_string()) {
    *out = content.get<std::string>();
    return Status::Ok();
  }
  if (!content.is_array()) return Fail(error, at, fmt::format("`{}` must be a string or an array of parts", at));
  *out = ojson::array();
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    const std::string pat = fmt::format("{}[{}]", at, j);
    if (!part.is_object()) return Fail(error, pat, fmt::format("`{}` must be an object", pat));
    const auto type = part.find("type");
    const std::string t = type != part.end() && type->is_string() ? type->get<std::string>() : "";
    if (t != "input_text" && t != "output_text") {
      return Fail(error, pat + ".type",
                  fmt::format("`{}.type` `{}` is not supported here (only `input_text` and `output_text` parts)", pat, t),
                  "unsupported_value");
    }
    const auto text = part.find("text");
    if (text == part.end() || !text->is_string()) return Fail(error, pat + ".text", fmt::format("`{}.text` must be a string", pat));
    out->push_back({{"type", "text"}, {"text", text->get<std::string>()}});
  }
  return Status::Ok();
}

// `input` → chat messages (appended to `messages`).
Status TranslateInput(const json& input, ojson* messages, ParseError* error) {
  if (input.is_string()) {
    messages->push_back({{"role", "user"}, {"content", input.get<std::string>()}});
    return Status::Ok();
  }
  if (!input.is_array() || input.empty()) return Fail(error, "input", "`input` must be a string or a non-empty array of messages");
  for (size_t i = 0; i < input.size(); ++i) {
    const json& item = input[i];
    const std::string at = fmt::format("input[{}]", i);
    if (!item.is_object()) return Fail(error, at, fmt::format("`{}` must be a message object", at));
    if (const auto type = item.find("type"); type != item.end() && *type != "message") {
      return Fail(error, at + ".type",
                  fmt::format("`{}.type` {} is not supported here (only messages)", at, type->dump(-1, ' ', false, kDumpErrors)),
                  "unsupported_value");
    }
    const auto role = item.find("role");
    const std::string r = role != item.end() && role->is_string() ? role->get<std::string>() : "";
    if (r != "user" && r != "assistant" && r != "system" && r != "developer") {
      return Fail(error, at + ".role", fmt::format("`{}.role` must be one of user, assistant, system, developer", at));
    }
    const auto content = item.find("content");
    if (content == item.end()) return Fail(error, at + ".content", fmt::format("`{}.content` is required", at));
    ojson c;
    LL_RETURN_IF_ERROR(TranslateContent(*content, at + ".content", &c, error));
    // Chat templates know system, not developer (OpenAI's newer name for it).
    messages->push_back({{"role", r == "developer" ? "system" : r}, {"content", std::move(c)}});
  }
  return Status::Ok();
}

// `text.format` → `response_format` (nothing for plain text).
Status TranslateTextFormat(const json& text, ojson* chat, ParseError* error) {
  if (!text.is_object()) return Fail(error, "text", "`text` must be an object");
  const auto format = text.find("format");
  if (format == text.end() || format->is_null()) return Status::Ok();
  const auto type = format->is_object() ? format->find("type") : format->end();
  if (!format->is_object() || type == format->end() || !type->is_string()) {
    return Fail(error, "text.format.type", "`text.format.type` must be text, json_object or json_schema");
  }
  if (*type == "text") return Status::Ok();
  if (*type == "json_object") {
    (*chat)["response_format"] = {{"type", "json_object"}};
    return Status::Ok();
  }
  if (*type != "json_schema") return Fail(error, "text.format.type", "`text.format.type` must be text, json_object or json_schema");
  ojson schema = ojson::object();
  for (const char* k : {"name", "schema", "strict", "description"}) {
    if (format->contains(k)) schema[k] = ojson::parse((*format)[k].dump(-1, ' ', false, kDumpErrors));
  }
  (*chat)["response_format"] = {{"type", "json_schema"}, {"json_schema", std::move(schema)}};
  return Status::Ok();
}

// What the Responses API refuses here, and the type checks of the fields echoed.
Status CheckUnsupported(const json& req, ParseError* error) {
  auto given = [&](const char* k) { return req.contains(k) && !req[k].is_null(); };
  if (given("tools") && !(req["tools"].is_array() && req["tools"].empty())) {
    return Fail(error, "tools", "tools are not supported by this gateway", "unsupported_parameter");
  }
  if (given("tool_choice") && req["tool_choice"] != "none" && req["tool_choice"] != "auto") {
    return Fail(error, "tool_choice", "tools are not supported by this gateway", "unsupported_parameter");
  }
  for (const char* k : {"previous_response_id", "conversation", "prompt"}) {
    if (given(k)) return Fail(error, k, fmt::format("`{}` is not supported: responses are not stored", k), "unsupported_parameter");
  }
  if (given("background") && req["background"] != false) {
    return Fail(error, "background", "background responses are not supported", "unsupported_parameter");
  }
  if (given("metadata") && !req["metadata"].is_object()) return Fail(error, "metadata", "`metadata` must be an object");
  if (given("instructions") && !req["instructions"].is_string()) return Fail(error, "instructions", "`instructions` must be a string");
  if (given("user") && !req["user"].is_string()) return Fail(error, "user", "`user` must be a string");
  if (given("stream") && !req["stream"].is_boolean()) return Fail(error, "stream", "`stream` must be a boolean");
  for (const char* k : {"temperature", "top_p"}) {
    if (given(k) && !req[k].is_number()) return Fail(error, k, fmt::format("`{}` must be a number", k));
  }
  if (given("max_output_tokens") &&
      !(req["max_output_tokens"].is_number_integer() && req["max_output_tokens"].get<int64_t>() >= 1)) {
    return Fail(error, "max_output_tokens", "`max_output_tokens` must be an integer of at least 1");
  }
  return Status::Ok();
}

// The request's fields as the Response object echoes them.
ojson Echo(const json& req) {
  auto field = [&](const char* k, ojson dflt) {
    return req.contains(k) && !req[k].is_null() ? ojson::parse(req[k].dump(-1, ' ', false, kDumpErrors)) : dflt;
  };
  ojson e = ojson::object();
  e["instructions"] = field("instructions", nullptr);
  e["max_output_tokens"] = field("max_output_tokens", nullptr);
  e["model"] = field("model", nullptr);
  e["temperature"] = field("temperature", 1.0);
  e["text"] = field("text", {{"format", {{"type", "text"}}}});
  e["top_p"] = field("top_p", 1.0);
  e["user"] = field("user", nullptr);
  e["metadata"] = field("metadata", ojson::object());
  return e;
}

ojson UsageJson(const UpstreamUsage& u) {
  return {{"input_tokens", u.prompt_tokens},
          {"input_tokens_details", {{"cached_tokens", 0}}},
          {"output_tokens", u.completion_tokens},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

ojson TextPart(const std::string& text) {
  return {{"type", "output_text"}, {"annotations", ojson::array()}, {"logprobs", ojson::array()}, {"text", text}};
}

ojson MessageItem(const ResponsesRequest& req, std::string_view status, ojson content) {
  return {{"id", req.message_id}, {"type", "message"}, {"status", status}, {"role", "assistant"}, {"content", std::move(content)}};
}

// A chat finish_reason → the Response's status and `incomplete_details.reason` ("" if complete).
std::pair<std::string_view, std::string_view> StatusFor(std::string_view finish_reason) {
  if (finish_reason == "length") return {"incomplete", "max_output_tokens"};
  if (finish_reason == "content_filter") return {"incomplete", "content_filter"};
  return {"completed", ""};
}

// The Response object.
ojson ResponseJson(const ResponsesRequest& req, std::string_view status, std::string_view incomplete, ojson output,
                   const UpstreamUsage* usage) {
  const ojson& e = req.echo;
  ojson r = {{"id", req.id},
             {"object", "response"},
             {"created_at", req.created_at},
             {"status", status},
             {"background", false},
             {"error", nullptr},
             {"incomplete_details", incomplete.empty() ? ojson(nullptr) : ojson{{"reason", incomplete}}}};
  for (const char* k : {"instructions", "max_output_tokens", "model"}) r[k] = e.value(k, ojson(nullptr));
  r["output"] = std::move(output);
  r["parallel_tool_calls"] = true;
  r["previous_response_id"] = nullptr;
  r["reasoning"] = {{"effort", nullptr}, {"summary", nullptr}};
  r["store"] = false;
  r["temperature"] = e.value("temperature", ojson(1.0));
  r["text"] = e.value("text", ojson::object());
  r["tool_choice"] = "auto";
  r["tools"] = ojson::array();
  r["top_p"] = e.value("top_p", ojson(1.0));
  r["truncation"] = "disabled";
  r["usage"] = usage != nullptr ? UsageJson(*usage) : ojson(nullptr);
  r["user"] = e.value("user", ojson(nullptr));
  r["metadata"] = e.value("metadata", ojson::object());
  return r;
}

}  // namespace

Result<std::string> ResponsesToChat(std::string_view body, ResponsesRequest* out, ParseError* error) {
  if (JsonNestsDeeperThan(body)) {
    return Fail(error, "", fmt::format("the body nests arrays and objects deeper than {} levels", kMaxJsonDepth), "invalid_json");
  }
  const json req = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object()) return Fail(error, "", "the body must be a JSON object", "invalid_json");
  const auto model = req.find("model");
  if (model == req.end() || !model->is_string() || model->get<std::string>().empty()) {
    return Fail(error, "model", "`model` is required (a string)");
  }
  LL_RETURN_IF_ERROR(CheckUnsupported(req, error));
  ojson chat = {{"model", model->get<std::string>()}, {"messages", ojson::array()}};
  if (req.contains("instructions") && req["instructions"].is_string()) {
    chat["messages"].push_back({{"role", "system"}, {"content", req["instructions"].get<std::string>()}});
  }
  const auto input = req.find("input");
  if (input == req.end() || input->is_null()) return Fail(error, "input", "`input` is required");
  LL_RETURN_IF_ERROR(TranslateInput(*input, &chat["messages"], error));
  for (auto it = req.begin(); it != req.end(); ++it) {
    const std::string& k = it.key();
    if (it->is_null() || k == "model" || k == "input" || k == "instructions" || k == "tools" || k == "tool_choice" ||
        k == "background" || In(k, kIgnored)) {
      continue;
    }
    if (k == "max_output_tokens") {
      chat["max_tokens"] = it->get<int64_t>();
    } else if (k == "text") {
      LL_RETURN_IF_ERROR(TranslateTextFormat(*it, &chat, error));
    } else if (In(k, kChatOnly)) {
      return Fail(error, k, fmt::format("`{}` is not a field of the Responses API (chat completions have it)", k),
                  "unsupported_parameter");
    } else {
      // temperature, top_p, user, stream, and fields the API does not have (a server's own).
      chat[k] = ojson::parse(it->dump(-1, ' ', false, kDumpErrors));
    }
  }
  out->echo = Echo(req);
  return chat.dump(-1, ' ', false, kDumpErrors);
}

std::string ChatToResponse(std::string_view chat_body, const ResponsesRequest& req, const UpstreamUsage& billed) {
  const json chat = json::parse(chat_body, nullptr, /*allow_exceptions=*/false);
  std::string text, finish;
  if (chat.is_object() && chat.contains("choices") && chat["choices"].is_array() && !chat["choices"].empty()) {
    const json& choice = chat["choices"][0];
    if (choice.is_object()) {
      const json msg = choice.value("message", json::object());
      if (msg.is_object() && msg.contains("content") && msg["content"].is_string()) text = msg["content"].get<std::string>();
      if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) finish = choice["finish_reason"].get<std::string>();
    }
  }
  const auto [status, incomplete] = StatusFor(finish);
  ojson output = ojson::array();
  output.push_back(MessageItem(req, status, ojson::array({TextPart(text)})));
  return ResponseJson(req, status, incomplete, std::move(output), &billed).dump(-1, ' ', false, kDumpErrors);
}

std::string ResponsesStream::Event(std::string_view type, nlohmann::ordered_json data) {
  ojson e = {{"type", type}, {"sequence_number", sequence_++}};
  for (auto& [k, v] : data.items()) e[k] = v;
  return fmt::format("event: {}\ndata: {}\n\n", type, e.dump(-1, ' ', false, kDumpErrors));
}

nlohmann::ordered_json ResponsesStream::Response(std::string_view status, const UpstreamUsage* usage) const {
  ojson output = ojson::array();
  if (status != "in_progress") {
    const auto item_status = StatusFor(finish_reason_).first;
    output.push_back(MessageItem(*req_, item_status, ojson::array({TextPart(text_)})));
  }
  return ResponseJson(*req_, status, status == "incomplete" ? StatusFor(finish_reason_).second : "", std::move(output), usage);
}

std::string ResponsesStream::Start() {
  std::string out = Event("response.created", {{"response", Response("in_progress", nullptr)}});
  out += Event("response.in_progress", {{"response", Response("in_progress", nullptr)}});
  out += Event("response.output_item.added",
               {{"output_index", 0}, {"item", MessageItem(*req_, "in_progress", ojson::array())}});
  out += Event("response.content_part.added", {{"item_id", req_->message_id},
                                               {"output_index", 0},
                                               {"content_index", 0},
                                               {"part", TextPart("")}});
  return out;
}

std::string ResponsesStream::OnChunk(std::string_view data) {
  if (data.empty() || data == "[DONE]") return "";
  const json chunk = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (chunk.is_object() && chunk.contains("error") && !failed_) {
    // The engine failed mid-answer and said so in the stream (llama-server: `{"error": {"code":
    // 500, "message", "type"}}`): an error event, and no completion after it.
    const json& e = chunk["error"];
    std::string message = "the model replica failed mid-stream";
    if (e.is_object() && e.contains("message") && e["message"].is_string()) message += ": " + e["message"].get<std::string>();
    return Error("upstream_failed", message);
  }
  if (!chunk.is_object() || !chunk.contains("choices") || !chunk["choices"].is_array() || chunk["choices"].empty()) {
    return "";
  }
  const json& choice = chunk["choices"][0];
  if (!choice.is_object()) return "";
  if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
    finish_reason_ = choice["finish_reason"].get<std::string>();
  }
  const auto delta = choice.find("delta");
  if (delta == choice.end() || !delta->is_object()) return "";
  const auto content = delta->find("content");
  if (content == delta->end() || !content->is_string() || content->get_ref<const std::string&>().empty()) return "";
  const std::string& piece = content->get_ref<const std::string&>();
  text_ += piece;
  return Event("response.output_text.delta", {{"item_id", req_->message_id},
                                              {"output_index", 0},
                                              {"content_index", 0},
                                              {"delta", piece},
                                              {"logprobs", ojson::array()}});
}

std::string ResponsesStream::Complete(const UpstreamUsage& billed) {
  if (failed_) return "";  // the error event ended it
  const auto [status, incomplete] = StatusFor(finish_reason_);
  std::string out = Event("response.output_text.done", {{"item_id", req_->message_id},
                                                        {"output_index", 0},
                                                        {"content_index", 0},
                                                        {"text", text_},
                                                        {"logprobs", ojson::array()}});
  out += Event("response.content_part.done", {{"item_id", req_->message_id},
                                              {"output_index", 0},
                                              {"content_index", 0},
                                              {"part", TextPart(text_)}});
  out += Event("response.output_item.done",
               {{"output_index", 0}, {"item", MessageItem(*req_, status, ojson::array({TextPart(text_)}))}});
  const std::string type = status == "completed" ? "response.completed" : "response.incomplete";
  out += Event(type, {{"response", Response(status, &billed)}});
  return out;
}

std::string ResponsesStream::Error(std::string_view code, std::string_view message) {
  failed_ = true;
  return Event("error", {{"code", code},
                         {"message", message},
                         {"param", nullptr},
                         {"error", {{"type", "server_error"}, {"code", code}, {"message", message}, {"param", nullptr}}}});
}

}  // namespace ll::gateway
