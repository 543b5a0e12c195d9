// RAII and binding helpers over SQLite's C API for the SQLite store: the connection and
// statement handles, a reset at the end of every use of a cached statement, and in-order
// parameter binding and column reading.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/check.h"
#include "core/time.h"

namespace ll::store::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const {
    // Fails only while statements are unfinalized, which the member order rules out.
    LL_CHECK(sqlite3_close(db) == SQLITE_OK);
  }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const {
    // finalize's result repeats the statement's last step error, already reported then.
    (void)sqlite3_finalize(stmt);
  }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Resets a cached statement and drops its bindings when a use of it ends, on every path: a
// statement left mid-result would hold its read transaction (and the WAL) open.
class ScopedReset {
 public:
  explicit ScopedReset(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ScopedReset(const ScopedReset&) = delete;
  ScopedReset& operator=(const ScopedReset&) = delete;
  ~ScopedReset() {
    // reset's result repeats the last step's error, which the caller has already turned
    // into a Status; clear_bindings always returns SQLITE_OK.
    (void)sqlite3_reset(stmt_);
    (void)sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_;
};

// Binds parameters ?1, ?2, … in order and keeps the first failure. Text is bound without a
// copy: the caller's strings outlive the step, and ScopedReset clears the bindings.
class Binder {
 public:
  explicit Binder(sqlite3_stmt* stmt) : stmt_(stmt) {}

  Binder& Text(std::string_view v) {
    if (rc_ == SQLITE_OK) {
      // A null pointer would bind NULL, not the empty string a default string_view means.
      const char* p = v.data() != nullptr ? v.data() : "";
      rc_ = sqlite3_bind_text64(stmt_, next_, p, v.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    ++next_;
    return *this;
  }
  // Empty binds NULL: for optional references such as the admin key's tenant.
  Binder& TextOrNull(std::string_view v) {
    if (!v.empty()) return Text(v);
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_null(stmt_, next_);
    ++next_;
    return *this;
  }
  Binder& Int(int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, next_, v);
    ++next_;
    return *this;
  }
  Binder& At(Time t) { return Int(t.ms); }
  Binder& AtOrNull(Time t) {
    if (t != kTimeMax) return Int(t.ms);
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_null(stmt_, next_);
    ++next_;
    return *this;
  }

  // SQLITE_OK when every parameter was bound.
  int Done() const {
    LL_CHECK(next_ - 1 == sqlite3_bind_parameter_count(stmt_));
    return rc_;
  }

 private:
  sqlite3_stmt* stmt_;
  int next_ = 1;
  int rc_ = SQLITE_OK;
};

// Reads the columns of the current row in order.
class Row {
 public:
  explicit Row(sqlite3_stmt* stmt) : stmt_(stmt) {}

  // NULL reads as "" (the admin key's tenant).
  std::string Text() {
    const unsigned char* p = sqlite3_column_text(stmt_, col_);
    int n = sqlite3_column_bytes(stmt_, col_);
    ++col_;
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
  }
  int64_t Int() { return sqlite3_column_int64(stmt_, col_++); }
  Time At() { return Time{Int()}; }
  Time AtOrMax() {
    if (sqlite3_column_type(stmt_, col_) == SQLITE_NULL) {
      ++col_;
      return kTimeMax;
    }
    return At();
  }

 private:
  sqlite3_stmt* stmt_;
  int col_ = 0;
};

}  // namespace ll::store::sqlite
