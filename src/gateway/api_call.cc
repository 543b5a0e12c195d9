#include "gateway/api_call.h"

#include <algorithm>
#include <initializer_list>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "core/json_depth.h"

namespace ll::gateway {
namespace {

namespace od = simdjson::ondemand;

constexpr int64_t kMaxTokensLimit = 1'000'000;
constexpr int64_t kMaxChoices = 128;
// What the chat template adds around each message, at most, in tokens.
constexpr int64_t kTemplateTokensPerMessage = 16;

// FNV-1a over the first `limit` bytes fed to it.
class PrefixHash {
 public:
  explicit PrefixHash(size_t limit) : left_(limit) {}
  void Feed(std::string_view s) {
    size_t n = std::min(left_, s.size());
    for (size_t i = 0; i < n; ++i) {
      h_ ^= static_cast<unsigned char>(s[i]);
      h_ *= 0x100000001b3ULL;
    }
    left_ -= n;
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
  size_t left_;
};

bool KnownRole(std::string_view r) {
  return r == "system" || r == "developer" || r == "user" || r == "assistant" || r == "tool" || r == "function";
}

// Parsing state: the call being filled in and the first error.
class Parser {
 public:
  Parser(ApiCall* call, ParseError* error, size_t prefix_bytes) : call_(call), error_(error), hash_(prefix_bytes) {}

  bool Fail(std::string param, std::string message, std::string code = "invalid_value") {
    if (!failed_) {
      error_->param = std::move(param);
      error_->message = std::move(message);
      error_->code = std::move(code);
      failed_ = true;
    }
    return false;
  }
  bool Type(const std::string& param, const char* what) {
    return Fail(param, fmt::format("`{}` must be {}", param, what), "invalid_type");
  }

  bool Text(std::string_view s) {
    call_->prompt_bytes += static_cast<int64_t>(s.size());
    hash_.Feed(s);
    return true;
  }

  // A string, or an array of parts (`{"type":"text","text":...}`; other parts count as a
  // fixed size), or null.
  bool Content(od::value v, const std::string& param) {
    od::json_type t;
    if (v.type().get(t)) return Type(param, "a string, an array of parts or null");
    if (t == od::json_type::null) return true;
    if (t == od::json_type::string) {
      std::string_view s;
      if (v.get_string().get(s)) return Type(param, "a string");
      return Text(s);
    }
    if (t != od::json_type::array) return Type(param, "a string, an array of parts or null");
    size_t i = 0;
    for (auto part_r : v.get_array()) {
      const std::string pp = fmt::format("{}[{}]", param, i++);
      od::object part;
      if (part_r.get_object().get(part)) return Type(pp, "an object");
      bool text = false;
      for (auto f_r : part) {
        od::field f;
        std::string_view key;
        if (std::move(f_r).get(f) || f.unescaped_key().get(key)) return Type(pp, "an object");
        if (key == "text") {
          std::string_view s;
          if (f.value().get_string().get(s)) return Type(pp + ".text", "a string");
          Text(s);
          text = true;
        }
      }
      // An image or audio part: bound its tokens by a fixed allowance.
      if (!text) call_->prompt_bytes += 4096;
    }
    return true;
  }

  bool Messages(od::value v) {
    od::array arr;
    if (v.get_array().get(arr)) return Type("messages", "an array of messages");
    size_t i = 0;
    for (auto m_r : arr) {
      const std::string mp = fmt::format("messages[{}]", i++);
      od::object m;
      if (m_r.get_object().get(m)) return Type(mp, "an object");
      bool has_role = false;
      for (auto f_r : m) {
        od::field f;
        std::string_view key;
        if (std::move(f_r).get(f) || f.unescaped_key().get(key)) return Type(mp, "an object");
        if (key == "role") {
          std::string_view role;
          if (f.value().get_string().get(role)) return Type(mp + ".role", "a string");
          if (!KnownRole(role)) {
            return Fail(mp + ".role", fmt::format("`{}.role` must be one of `system`, `developer`, `user`, `assistant`, "
                                                  "`tool`, `function`", mp));
          }
          Text(role);
          Text(":");
          has_role = true;
        } else if (key == "content") {
          if (!Content(f.value(), mp + ".content")) return false;
        } else if (key == "tool_calls" || key == "name" || key == "tool_call_id") {
          // Sent to the model too: bound them by their JSON size.
          std::string_view raw;
          od::value fv = f.value();
          od::json_type t;
          if (fv.type().get(t)) return Type(mp + "." + std::string(key), "valid JSON");
          if (t == od::json_type::array) {
            od::array a;
            if (fv.get_array().get(a) || a.raw_json().get(raw)) return Type(mp + "." + std::string(key), "valid JSON");
          } else if (t == od::json_type::string) {
            if (fv.get_string().get(raw)) return Type(mp + "." + std::string(key), "a string");
          }
          call_->prompt_bytes += static_cast<int64_t>(raw.size());
        }
      }
      if (!has_role) return Fail(mp + ".role", fmt::format("`{}.role` is required", mp), "missing_field");
      ++call_->messages;
    }
    if (call_->messages == 0) return Fail("messages", "`messages` must not be empty");
    return true;
  }

  // `prompt` (completions) or `input` (embeddings): a string, an array of strings, an array
  // of token ids, or an array of arrays of token ids.
  bool Prompt(od::value v, const std::string& param) {
    od::json_type t;
    if (v.type().get(t)) return Type(param, "a string or an array");
    if (t == od::json_type::string) {
      std::string_view s;
      if (v.get_string().get(s)) return Type(param, "a string");
      ++call_->messages;
      return Text(s);
    }
    if (t != od::json_type::array) return Type(param, "a string, an array of strings or of token ids");
    size_t i = 0;
    bool any = false;
    for (auto e_r : v.get_array()) {
      const std::string ep = fmt::format("{}[{}]", param, i++);
      od::value e;
      od::json_type et;
      if (std::move(e_r).get(e) || e.type().get(et)) return Type(ep, "a string, a token id or an array of token ids");
      any = true;
      if (et == od::json_type::string) {
        std::string_view s;
        if (e.get_string().get(s)) return Type(ep, "a string");
        Text(s);
        ++call_->messages;
      } else if (et == od::json_type::number) {
        int64_t id;
        if (e.get_int64().get(id) || id < 0) return Type(ep, "a token id (an integer ≥ 0)");
        ++call_->prompt_token_ids;
        if (i == 1) ++call_->messages;
      } else if (et == od::json_type::array) {
        for (auto id_r : e.get_array()) {
          int64_t id;
          if (id_r.get_int64().get(id) || id < 0) return Type(ep, "an array of token ids");
          ++call_->prompt_token_ids;
        }
        ++call_->messages;
      } else {
        return Type(ep, "a string, a token id or an array of token ids");
      }
    }
    if (!any) return Fail(param, fmt::format("`{}` must not be empty", param));
    return true;
  }

  bool Int(od::value v, const std::string& param, int64_t lo, int64_t hi, int64_t* out) {
    int64_t x;
    if (v.get_int64().get(x)) {
      od::json_type t;
      if (!v.type().get(t) && t == od::json_type::null) return true;  // null: as if absent
      return Type(param, "an integer");
    }
    if (x < lo || x > hi) return Fail(param, fmt::format("`{}` must be in [{}, {}], got {}", param, lo, hi, x));
    *out = x;
    return true;
  }

  bool Bool(od::value v, const std::string& param, bool* out) {
    od::json_type t;
    if (!v.type().get(t) && t == od::json_type::null) return true;
    if (v.get_bool().get(*out)) return Type(param, "a boolean");
    return true;
  }

  // A number in [lo, hi] (integers too), or null.
  bool Number(od::value v, const std::string& param, double lo, double hi) {
    od::json_type t;
    if (v.type().get(t)) return Type(param, "a number");
    if (t == od::json_type::null) return true;
    double x;
    if (t != od::json_type::number || v.get_double().get(x)) return Type(param, "a number");
    if (!(x >= lo && x <= hi)) return Fail(param, fmt::format("`{}` must be in [{}, {}], got {}", param, lo, hi, x));
    return true;
  }

  // A string (one of `allowed`, when given), or null.
  bool String(od::value v, const std::string& param, std::initializer_list<std::string_view> allowed = {}) {
    od::json_type t;
    if (v.type().get(t)) return Type(param, "a string");
    if (t == od::json_type::null) return true;
    std::string_view s;
    if (t != od::json_type::string || v.get_string().get(s)) return Type(param, "a string");
    if (allowed.size() == 0 || std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return true;
    std::string names;
    for (std::string_view a : allowed) names += fmt::format("{}`{}`", names.empty() ? "" : ", ", a);
    return Fail(param, fmt::format("`{}` must be one of {}", param, names));
  }

  // A JSON value of one of the kinds in `kinds` (null always passes).
  bool Kind(od::value v, const std::string& param, std::initializer_list<od::json_type> kinds, const char* what) {
    od::json_type t;
    if (v.type().get(t)) return Type(param, what);
    if (t == od::json_type::null) return true;
    if (std::find(kinds.begin(), kinds.end(), t) == kinds.end()) return Type(param, what);
    return true;
  }

  // `stop`: a string or an array of up to 4 strings, or null.
  bool Stop(od::value v) {
    od::json_type t;
    if (v.type().get(t)) return Type("stop", "a string or an array of strings");
    if (t == od::json_type::null || t == od::json_type::string) return String(v, "stop");
    od::array a;
    if (t != od::json_type::array || v.get_array().get(a)) return Type("stop", "a string or an array of strings");
    size_t i = 0;
    for (auto e : a) {
      std::string_view s;
      if (e.get_string().get(s)) return Type(fmt::format("stop[{}]", i), "a string");
      if (++i > 4) return Fail("stop", "`stop` may hold at most 4 sequences");
    }
    return true;
  }

  // `logit_bias`: an object of token id → number in [-100, 100], or null.
  bool LogitBias(od::value v) {
    od::json_type t;
    if (v.type().get(t)) return Type("logit_bias", "an object");
    if (t == od::json_type::null) return true;
    od::object o;
    if (t != od::json_type::object || v.get_object().get(o)) return Type("logit_bias", "an object");
    for (auto f_r : o) {
      od::field f;
      std::string_view key;
      if (std::move(f_r).get(f) || f.unescaped_key().get(key)) return Type("logit_bias", "an object");
      if (!Number(f.value(), fmt::format("logit_bias.{}", key), -100, 100)) return false;
    }
    return true;
  }

  // The optional fields the gateway does not read but forwards: each must have the type the
  // OpenAI API gives it, so that what a replica would refuse (or read differently) never
  // reaches it. Fields nobody knows (a server's own extensions) pass as they are.
  bool Forwarded(Endpoint e, std::string_view key, od::value v, int64_t* best_of) {
    using J = od::json_type;
    const std::string k(key);
    const bool chat = e == Endpoint::kChatCompletions, text = e == Endpoint::kCompletions;
    if (e == Endpoint::kEmbeddings) {
      if (key == "encoding_format") return String(v, k, {"float", "base64"});
      if (key == "dimensions") { int64_t d; return Int(v, k, 1, 1'000'000, &d); }
      if (key == "user") return String(v, k);
      if (key == "stream") { bool b; return Bool(v, k, &b); }  // not streamed, but never mistyped
      return true;
    }
    if (key == "temperature") return Number(v, k, 0, 2);
    if (key == "top_p") return Number(v, k, 0, 1);
    if (key == "presence_penalty" || key == "frequency_penalty") return Number(v, k, -2, 2);
    if (key == "seed") { int64_t s; return Int(v, k, INT64_MIN, INT64_MAX, &s); }
    if (key == "user") return String(v, k);
    if (key == "stop") return Stop(v);
    if (key == "logit_bias") return LogitBias(v);
    if (key == "logprobs" && chat) { bool b; return Bool(v, k, &b); }
    if (key == "logprobs" && text) { int64_t n; return Int(v, k, 0, 20, &n); }
    if (key == "top_logprobs" && chat) { int64_t n; return Int(v, k, 0, 20, &n); }
    if (key == "echo" && text) { bool b; return Bool(v, k, &b); }
    if (key == "suffix" && text) return String(v, k);
    if (key == "best_of" && text) return Int(v, k, 1, kMaxChoices, best_of);
    if (!chat) return true;
    if (key == "parallel_tool_calls" || key == "store") { bool b; return Bool(v, k, &b); }
    if (key == "tools" || key == "functions" || key == "modalities") return Kind(v, k, {J::array}, "an array");
    if (key == "response_format" || key == "metadata" || key == "audio" || key == "prediction" ||
        key == "web_search_options") {
      return Kind(v, k, {J::object}, "an object");
    }
    if (key == "tool_choice" || key == "function_call") return Kind(v, k, {J::string, J::object}, "a string or an object");
    if (key == "reasoning_effort" || key == "service_tier") return String(v, k);
    return true;
  }

  // `stream_options`: an object (its `include_usage` a boolean) or null; notes its byte span
  // in the body (from `key_at`, its key's opening quote, in `base`) for UpstreamBody.
  bool StreamOptions(od::value v, size_t key_at, const char* base) {
    od::json_type t;
    od::object o;
    std::string_view raw;
    if (v.type().get(t) || (t != od::json_type::object && t != od::json_type::null)) return Type("stream_options", "an object");
    if (t == od::json_type::null) {
      raw = v.raw_json_token();
      call_->stream_options_begin = key_at;
      call_->stream_options_end = static_cast<size_t>(raw.data() - base) + 4;
      return true;
    }
    if (v.get_object().get(o) || o.raw_json().get(raw)) return Type("stream_options", "an object");
    call_->stream_options_begin = key_at;
    call_->stream_options_end = static_cast<size_t>(raw.data() - base) + raw.size();
    while (call_->stream_options_end > 0 && base[call_->stream_options_end - 1] != '}') --call_->stream_options_end;
    // raw_json() consumed the object: read its fields from a copy.
    const simdjson::padded_string sub(raw);
    od::parser sub_parser;
    od::document sub_doc;
    od::object so;
    if (sub_parser.iterate(sub).get(sub_doc) || sub_doc.get_object().get(so)) {
      return Fail("", "the body is not valid JSON", "invalid_json");
    }
    for (auto sf_r : so) {
      od::field sf;
      std::string_view skey;
      if (std::move(sf_r).get(sf) || sf.unescaped_key().get(skey)) return Fail("", "the body is not valid JSON", "invalid_json");
      bool ignored = false;
      if (skey == "include_usage" && !Bool(sf.value(), "stream_options.include_usage", &call_->client_wants_usage)) return false;
      if (skey == "include_obfuscation" && !Bool(sf.value(), "stream_options.include_obfuscation", &ignored)) return false;
    }
    return true;
  }

  // One top-level member of the body for `e`: `key` as written, its value `v`, and where its
  // key's opening quote is (`key_at` in `base`).
  bool Member(Endpoint e, std::string_view key, od::value v, size_t key_at, const char* base) {
    if (key == "model") {
      std::string_view m;
      if (v.get_string().get(m)) return Type("model", "a string");
      if (m.empty() || m.size() > 256) return Fail("model", "`model` must be 1..256 characters");
      call_->model = std::string(m);
      has_model_ = true;
      return true;
    }
    if (key == PromptField(e)) {
      has_prompt_ = true;
      return e == Endpoint::kChatCompletions ? Messages(v) : Prompt(v, std::string(key));
    }
    if (key == "stream" && e != Endpoint::kEmbeddings) return Bool(v, "stream", &call_->stream);
    if (key == "stream_options" && e != Endpoint::kEmbeddings) return StreamOptions(v, key_at, base);
    if (key == "max_tokens" || key == "max_completion_tokens") {
      // Both may be sent; servers differ on which wins, so the larger one is held and metered.
      int64_t n = -1;
      const bool ok = Int(v, std::string(key), 1, kMaxTokensLimit, &n);
      call_->max_tokens = std::max(call_->max_tokens, n);
      return ok;
    }
    if (key == "n" && e != Endpoint::kEmbeddings) return Int(v, "n", 1, kMaxChoices, &call_->n);
    return Forwarded(e, key, v, &call_->best_of);
  }

  // After the last member: what is required and what depends on another field.
  bool Complete(Endpoint e) {
    if (!has_model_) return Fail("model", "`model` is required", "missing_field");
    if (!has_prompt_) return Fail(std::string(PromptField(e)), fmt::format("`{}` is required", PromptField(e)), "missing_field");
    if (call_->best_of > 0 && call_->best_of < call_->n) {
      return Fail("best_of", fmt::format("`best_of` ({}) must be at least `n` ({})", call_->best_of, call_->n));
    }
    return true;
  }

  uint64_t hash() const { return hash_.value(); }
  bool failed() const { return failed_; }

 private:
  static std::string_view PromptField(Endpoint e) {
    return e == Endpoint::kChatCompletions ? "messages" : e == Endpoint::kCompletions ? "prompt" : "input";
  }

  ApiCall* call_;
  ParseError* error_;
  PrefixHash hash_;
  bool failed_ = false;
  bool has_model_ = false, has_prompt_ = false;
};

// A member's key as written: simdjson validated the string, and a key with escapes is no name
// we read (the caller refuses it).
std::string_view KeyAsWritten(od::field& f) {
  const char* key_start = f.key().raw() - 1;  // the opening quote
  const char* key_end = key_start + 1;
  while (*key_end != '"') key_end += *key_end == '\\' ? 2 : 1;
  return {key_start + 1, static_cast<size_t>(key_end - key_start - 1)};
}

}  // namespace

std::string_view EndpointPath(Endpoint e) {
  switch (e) {
    case Endpoint::kChatCompletions: return "/v1/chat/completions";
    case Endpoint::kCompletions: return "/v1/completions";
    case Endpoint::kEmbeddings: return "/v1/embeddings";
  }
  return "";
}

int64_t ApiCall::EstimatedPromptTokens() const { return (prompt_bytes + 3) / 4 + prompt_token_ids; }

int64_t ApiCall::WorstPromptTokens() const {
  return std::max(prompt_bytes, body_bytes) + prompt_token_ids + kTemplateTokensPerMessage * (messages + 1);
}

Result<ApiCall> ParseApiCall(Endpoint endpoint, std::string_view body, size_t prefix_bytes, ParseError* error) {
  ApiCall call;
  call.endpoint = endpoint;
  Parser p(&call, error, prefix_bytes);
  auto invalid = [&](std::string message) {
    p.Fail("", std::move(message), "invalid_json");
    return Status::Invalid(error->message);
  };
  if (JsonNestsDeeperThan(body)) {
    return invalid(fmt::format("the body nests arrays and objects deeper than {} levels", kMaxJsonDepth));
  }
  const simdjson::padded_string padded(body);
  od::parser parser;
  od::document doc;
  od::object root;
  if (parser.iterate(padded).get(doc) || doc.get_object().get(root)) return invalid("the body must be a JSON object");
  std::vector<std::string_view> seen;  // the fields read so far
  for (auto f_r : root) {
    od::field f;
    if (std::move(f_r).get(f)) return invalid("the body is not valid JSON");
    const std::string_view key = KeyAsWritten(f);
    if (key.find('\\') != std::string_view::npos) {
      // "max_tok\u0065ns" would pass us by and still reach the model: refused.
      p.Fail(std::string(key), "field names with escapes are not accepted", "invalid_value");
      return Status::Invalid(error->message);
    }
    const size_t key_at = static_cast<size_t>(key.data() - 1 - padded.data());
    bool ok = p.Member(endpoint, key, f.value(), key_at, padded.data());
    if (ok && std::find(seen.begin(), seen.end(), key) != seen.end()) {
      // `{"stream": false, "stream": true}`: servers differ on which one counts.
      ok = p.Fail(std::string(key), fmt::format("`{}` is given twice", key));
    }
    seen.push_back(key);
    if (!ok) return Status::Invalid(error->message);
  }
  if (!p.Complete(endpoint)) return Status::Invalid(error->message);
  // Trailing bytes after the object are not JSON.
  const char* trailing = nullptr;
  if (!doc.current_location().get(trailing)) return invalid("the body is not valid JSON: bytes after the object");
  call.prefix_hash = p.hash();
  call.body_bytes = static_cast<int64_t>(body.size());
  return call;
}

std::string UpstreamBody(std::string_view body, const ApiCall& call, int64_t default_max_tokens) {
  constexpr std::string_view kWithUsage = "\"stream_options\":{\"include_usage\":true}";
  // Members to add after the opening brace.
  std::string add;
  if (call.endpoint != Endpoint::kEmbeddings && call.max_tokens < 0) {
    add += fmt::format("\"max_tokens\":{},", default_max_tokens);
  }
  if (call.stream && call.stream_options_begin == std::string::npos) add += std::string(kWithUsage) + ",";
  std::string_view rest = body;
  std::string out;
  out.reserve(body.size() + add.size() + kWithUsage.size());
  if (call.stream_options_begin != std::string::npos) {
    const size_t b = call.stream_options_begin, e = call.stream_options_end;
    std::string edited;
    if (call.stream) {
      edited.append(body.substr(0, b)).append(kWithUsage).append(body.substr(e));
    } else {
      // Remove the member and one comma next to it.
      size_t after = e;
      while (after < body.size() && (body[after] == ' ' || body[after] == '\t' || body[after] == '\n' || body[after] == '\r')) ++after;
      if (after < body.size() && body[after] == ',') {
        edited.append(body.substr(0, b)).append(body.substr(after + 1));
      } else {
        size_t before = b;
        while (before > 0 && body[before - 1] != ',' && body[before - 1] != '{') --before;
        if (before > 0 && body[before - 1] == ',') --before;
        edited.append(body.substr(0, before)).append(body.substr(e));
      }
    }
    if (add.empty()) return edited;
    out = std::move(edited);
    rest = out;
    std::string with;
    const size_t brace = rest.find('{');
    with.append(rest.substr(0, brace + 1)).append(add).append(rest.substr(brace + 1));
    return with;
  }
  if (add.empty()) return std::string(body);
  const size_t brace = body.find('{');  // the parse found an object: there is one
  out.append(body.substr(0, brace + 1)).append(add).append(body.substr(brace + 1));
  return out;
}

}  // namespace ll::gateway
