// A Store that fails commits on demand (LevelDB's `SpecialEnv` with its `no_space_` and
// `data_sync_error_` flags), so that the paths a real disk takes only rarely get tested: a
// commit refused (disk full, a lost connection) and a sync that fails after the write.
//
// Only commits that carry something count: an empty batch writes nothing, so it has nothing to
// fail (every store returns Ok for it at once).
// Thread-safety: as the wrapped store's (one thread at a time).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "core/status.h"
#include "store/store.h"
#include "store/store_wrapper.h"

namespace ll::store {

struct CommitFault {
  enum class Kind {
    // The commit fails before anything is written: the store is unchanged (disk full, the
    // database gone, a standby's lost lock).
    kCommit,
    // The wrapped store writes the whole batch, then the commit reports failure, as when the
    // fsync after the write fails: the batch may be on disk although the caller was told it is
    // not (SQLite's WAL replays such frames on the next open). A caller must not assume either.
    kSync,
  };
  Kind kind = Kind::kCommit;
  // Which commit fails, counted from when the fault is armed: 1 is the next one.
  int64_t nth = 1;
  // Then every commit after it fails too, as a disk that stays full (else only the nth one).
  bool sticky = false;
  // What the failed commit returns: a store's error, as SQLite's or PostgreSQL's would read.
  Status error = Status::Io("store: commit: disk I/O error (injected)");
};

class FaultStore final : public StoreWrapper {
 public:
  // REQUIRES: `target` is not null.
  explicit FaultStore(std::unique_ptr<Store> target) : StoreWrapper(std::move(target)) {}

  // Arms `fault`, replacing any armed one. REQUIRES: fault.nth >= 1, !fault.error.ok().
  void Inject(CommitFault fault);
  // Disarms the fault: commits go through again.
  void Clear() { fault_.reset(); }
  bool armed() const { return fault_.has_value(); }

  // A failed commit leaves `batch` as it was (no seqs filled in), whatever its kind.
  Status Commit(Batch& batch) override;

  // Counters over the store's life: non-empty commits asked for, those that failed (injected
  // or the wrapped store's own failures), and of these the injected ones.
  int64_t commits() const { return commits_; }
  int64_t failed_commits() const { return failed_commits_; }
  int64_t injected_failures() const { return injected_failures_; }

 private:
  // Whether the commit being made is the one (or one of those) the armed fault fails.
  bool Hits();

  std::optional<CommitFault> fault_;
  int64_t until_fault_ = 0;  // commits to go through before the armed fault's first failure
  int64_t commits_ = 0, failed_commits_ = 0, injected_failures_ = 0;
};

}  // namespace ll::store
