// Validation of JSON request bodies for the control plane's endpoints: every error is a 400
// Reply that names the field (OpenAI-style `param`).
#pragma once

#include <cctype>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "api/control_plane.h"
#include "core/money.h"

namespace ll::api {

// Ids chosen by clients (hold and slice ids, usage keys): printable, no spaces, bounded.
inline bool ValidClientId(const std::string& id, size_t max) {
  if (id.empty() || id.size() > max) return false;
  for (unsigned char c : id) {
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':' || c == '/')) return false;
  }
  return true;
}

// A field of a JSON request body, with errors that name it.
class Fields {
 public:
  // `prefix` goes before every field name in errors: "events[3]." names a field of an element.
  // A body that is not a JSON object is the first error (the one check of it for every
  // endpoint that takes a body): each field is then absent and nothing else is reported.
  explicit Fields(const nlohmann::json& body, std::string prefix = "") : body_(body), prefix_(std::move(prefix)) {
    if (body_.is_object()) return;
    if (prefix_.empty()) {
      Fail("invalid_type", "the body must be a JSON object", "");
    } else {
      const std::string name = prefix_.ends_with('.') ? prefix_.substr(0, prefix_.size() - 1) : prefix_;
      Fail("invalid_type", fmt::format("`{}` must be an object", name), name);
    }
  }
  bool ok() const { return !error_; }
  Reply error() const { return *error_; }

  std::optional<int64_t> Int(const char* key, int64_t lo, int64_t hi, bool required) {
    const nlohmann::json* it = Find(key, required);
    if (it == nullptr) return std::nullopt;
    if (!it->is_number_integer()) {
      Fail("invalid_type", fmt::format("`{}` must be an integer", Name(key)), Name(key));
      return std::nullopt;
    }
    int64_t v = 0;
    if (it->is_number_unsigned()) {
      uint64_t u = it->get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) u = INT64_MAX;
      v = static_cast<int64_t>(u);
    } else {
      v = it->get<int64_t>();
    }
    if (v < lo || v > hi) {
      Fail("invalid_value", fmt::format("`{}` must be in [{}, {}], got {}", Name(key), lo, hi, v), Name(key));
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::string> Str(const char* key, bool required) {
    const nlohmann::json* it = Find(key, required);
    if (it == nullptr) return std::nullopt;
    if (!it->is_string()) {
      Fail("invalid_type", fmt::format("`{}` must be a string", Name(key)), Name(key));
      return std::nullopt;
    }
    return it->get<std::string>();
  }

  // A name a person gives (a tenant's, a key's): 1..max_bytes of UTF-8 without control
  // characters (a NUL or CR/LF would forge lines in logs, CSV invoices and the dashboard; C1
  // ones garble terminals).
  std::optional<std::string> Text(const char* key, bool required, size_t max_bytes = 200) {
    auto v = Str(key, required);
    if (!v) return v;
    if (v->empty() || v->size() > max_bytes) {
      Fail("invalid_value", fmt::format("`{}` must be 1..{} bytes", Name(key), max_bytes), Name(key));
      return std::nullopt;
    }
    const std::string& text = *v;
    for (size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      // C0, DEL, and C1 (U+0080..U+009F: 0xC2 0x80..0x9F in UTF-8).
      const bool c1 = c == 0xC2 && i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xE0) == 0x80;
      if (c < 0x20 || c == 0x7f || c1) {
        Fail("invalid_value", fmt::format("`{}` must not contain control characters (byte {})", Name(key), i),
             Name(key));
        return std::nullopt;
      }
    }
    return v;
  }

  // A dollar amount in [0, max], as a string ("2.50") or a JSON number (2.5): both forms obey the
  // same rules (at most 6 decimals, nothing rounded, the same cap).
  std::optional<Money> Dollars(const char* key, bool required, Money max = kMaxAmount) {
    const nlohmann::json* it = Find(key, required);
    if (it == nullptr) return std::nullopt;
    std::string text;
    if (it->is_string()) {
      text = it->get<std::string>();
    } else if (it->is_number_integer()) {
      text = it->dump();
    } else if (it->is_number_float()) {
      auto m = MoneyFromDouble(it->get<double>());
      if (!m.ok()) {
        Fail("invalid_value", fmt::format("`{}`: {}", Name(key), m.status().message()), Name(key));
        return std::nullopt;
      }
      text = FormatMoney(*m);
    } else {
      Fail("invalid_type", fmt::format("`{}` must be a dollar amount (string or number)", Name(key)),
           Name(key));
      return std::nullopt;
    }
    auto m = ParseMoney(text);
    if (m.ok() && (m->micros < 0 || *m > max)) {
      m = Status::Invalid(fmt::format("must be a dollar amount in [0, {}]", FormatMoney(max)));
    }
    if (!m.ok()) {
      Fail("invalid_value", fmt::format("`{}`: {}", Name(key), m.status().message()), Name(key));
      return std::nullopt;
    }
    return *m;
  }

  // Rejects keys not in `known`.
  void Only(std::initializer_list<const char*> known) {
    if (error_) return;
    for (auto& [k, v] : body_.items()) {
      bool ok = false;
      for (const char* key : known) ok = ok || k == key;
      if (!ok) {
        Fail("invalid_value", fmt::format("unknown field `{}{}`", prefix_, k), prefix_ + k);
        return;
      }
    }
  }

  std::string Name(const char* key) const { return prefix_ + key; }

  // The field's value, or null when absent (or JSON null); a required one is then an error.
  const nlohmann::json* Find(const char* key, bool required) {
    if (error_) return nullptr;
    auto it = body_.find(key);
    if (it == body_.end() || it->is_null()) {
      if (required) Fail("missing_field", fmt::format("`{}` is required", Name(key)), Name(key));
      return nullptr;
    }
    return &*it;
  }

  void Fail(std::string_view code, std::string message, std::string_view param) {
    if (!error_) error_ = ErrorReply(StatusCode::kInvalidArgument, code, std::move(message), param);
  }
  // The first error of a nested object's Fields.
  void Fail(Reply error) {
    if (!error_) error_ = std::move(error);
  }

 private:
  const nlohmann::json& body_;
  std::string prefix_;
  std::optional<Reply> error_;
};


}  // namespace ll::api
