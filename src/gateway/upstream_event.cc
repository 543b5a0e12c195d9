#include "gateway/upstream_event.h"

#include <algorithm>

#include <simdjson.h>

namespace ll::gateway {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t SkipSpaces(std::string_view s, size_t i) {
  while (i < s.size() && IsSpace(s[i])) ++i;
  return i;
}

// The value of each member named `quoted` (the key with its quotes) in `json`, from its first
// character to the end of `json`, passed to `pred`; true if `pred` is for one of them. Scanned,
// not parsed: a quoted key cannot occur inside a JSON string, where its quotes are escaped.
template <typename Pred>
bool AnyValue(std::string_view json, std::string_view quoted, Pred pred) {
  for (size_t at = json.find(quoted); at != std::string_view::npos; at = json.find(quoted, at + 1)) {
    size_t i = SkipSpaces(json, at + quoted.size());
    if (i >= json.size() || json[i] != ':') continue;  // a string value equal to the key
    i = SkipSpaces(json, i + 1);
    if (i < json.size() && pred(json.substr(i))) return true;
  }
  return false;
}

// A string value with at least one character.
bool NonEmptyString(std::string_view v) { return v.size() >= 2 && v[0] == '"' && v[1] != '"'; }

// An array value with at least one element.
bool NonEmptyArray(std::string_view v) {
  if (v.empty() || v[0] != '[') return false;
  const size_t i = SkipSpaces(v, 1);
  return i < v.size() && v[i] != ']';
}

bool EmptyArray(std::string_view v) {
  if (v.empty() || v[0] != '[') return false;
  const size_t i = SkipSpaces(v, 1);
  return i < v.size() && v[i] == ']';
}

bool IsObject(std::string_view v) { return !v.empty() && v[0] == '{'; }

}  // namespace

std::optional<UpstreamUsage> ReadUsage(std::string_view json) {
  if (json.find("\"usage\"") == std::string_view::npos) return std::nullopt;
  simdjson::padded_string padded(json);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  simdjson::ondemand::object usage;
  if (parser.iterate(padded).get(doc) || doc["usage"].get_object().get(usage)) return std::nullopt;
  int64_t p = 0, c = 0;
  for (auto f_r : usage) {
    simdjson::ondemand::field f;
    std::string_view k;
    if (std::move(f_r).get(f) || f.unescaped_key().get(k)) return std::nullopt;
    if (k == "prompt_tokens") {
      if (f.value().get_int64().get(p)) return std::nullopt;
    } else if (k == "completion_tokens") {
      if (f.value().get_int64().get(c)) return std::nullopt;
    }
  }
  return UpstreamUsage{.prompt_tokens = std::max<int64_t>(0, p), .completion_tokens = std::max<int64_t>(0, c)};
}

std::string_view EventData(std::string_view event) {
  const size_t data_at = event.find("data:");
  std::string_view payload = data_at == std::string_view::npos ? std::string_view() : event.substr(data_at + 5);
  while (!payload.empty() && payload.front() == ' ') payload.remove_prefix(1);
  while (!payload.empty() && (payload.back() == '\n' || payload.back() == '\r')) payload.remove_suffix(1);
  return payload;
}

StreamEvent ClassifyStreamEvent(std::string_view data) {
  StreamEvent e;
  if (data == "[DONE]") {
    e.done = true;
    return e;
  }
  if (data.empty()) return e;
  if (AnyValue(data, "\"usage\"", IsObject)) e.usage = ReadUsage(data);
  e.usage_only = e.usage.has_value() && AnyValue(data, "\"choices\"", EmptyArray);
  if (e.usage_only) return e;
  e.has_tokens = AnyValue(data, "\"content\"", NonEmptyString) || AnyValue(data, "\"text\"", NonEmptyString) ||
                 AnyValue(data, "\"reasoning_content\"", NonEmptyString) || AnyValue(data, "\"refusal\"", NonEmptyString) ||
                 AnyValue(data, "\"tool_calls\"", NonEmptyArray);
  return e;
}

}  // namespace ll::gateway
