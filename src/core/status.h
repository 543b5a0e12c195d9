// Status and Result<T>: expected failures as values (LevelDB status.h, Ray RAY_RETURN_NOT_OK).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "core/check.h"

namespace ll {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input: a request, a file line, an option
  kNotFound,
  kConflict,           // e.g. a reserved term the forecast cannot guarantee
  kResourceExhausted,  // no capacity
  kIoError,
  kInternal,
  kUnavailable,  // a service behind us (e.g. slurmctld) cannot be reached now; worth a retry
  kUnauthenticated,    // no credentials, or unknown ones
  kPermissionDenied,   // known credentials that may not do this
  kInsufficientFunds,  // a prepaid balance does not cover it
  kRateLimited,        // a rate limit is used up for now
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  // A domain error a client can act on: `reason` is its stable name (the API's error `code`,
  // e.g. `hold_exists`) and `param` the request field it is about, if any. Components say
  // these; only the transport turns them into a protocol's answer (api::StatusToHttp).
  Status(StatusCode code, std::string_view reason, std::string message, std::string_view param = {})
      : code_(code), message_(std::move(message)), reason_(reason), param_(param) {}

  static Status Ok() { return Status(); }
  static Status Invalid(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
  static Status Exhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status Io(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Empty unless given: the API then names the code (StatusCodeName).
  const std::string& reason() const { return reason_; }
  const std::string& param() const { return param_; }
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string reason_, param_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { LL_CHECK(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    LL_CHECK(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    LL_CHECK(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    LL_CHECK(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

#define LL_RETURN_IF_ERROR(expr)      \
  do {                                \
    ::ll::Status _st = (expr);        \
    if (!_st.ok()) return _st;        \
  } while (0)

#define LL_CONCAT_INNER(a, b) a##b
#define LL_CONCAT(a, b) LL_CONCAT_INNER(a, b)
#define LL_ASSIGN_OR_RETURN(lhs, expr) LL_ASSIGN_OR_RETURN_IMPL(LL_CONCAT(_res_, __LINE__), lhs, expr)
#define LL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

}  // namespace ll
