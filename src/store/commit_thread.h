// Commits on a thread of its own (issue 20): an event loop hands a batch over and goes on
// serving while the commit syncs, and hears back when the batch is durable.
//
// Order: batches commit one at a time, in the order they were handed over (Submit, or the
// Commit of store()), so a later snapshot (a balance) never lands before an earlier one.
// store() is the store for every other caller: its reads are serialized with the commits, and
// its Commit hands the batch over and waits until it is durable (after those before it).
//
// Thread-safety: Submit and store() may be used from any thread; `done` callbacks run on the
// commit thread, one at a time, in commit order. A failed commit is reported to its `done`
// (the control plane stops the process on it: fail-stop).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "core/status.h"
#include "store/store.h"

namespace ll::store {

class CommitThread {
 public:
  // `target` outlives this object; no one else calls it while this object lives.
  explicit CommitThread(Store& target);
  // Commits what was handed over, then ends the thread.
  ~CommitThread();
  CommitThread(const CommitThread&) = delete;
  CommitThread& operator=(const CommitThread&) = delete;

  // Runs on the commit thread once `batch` is committed (or failed); `batch` has the events'
  // seqs and `usage_inserted` filled in.
  using Done = std::function<void(Status, Batch&)>;
  // Hands `batch` over. An empty batch is not committed: `done` gets Ok once everything handed
  // over before it is durable (a barrier).
  void Submit(Batch batch, Done done);
  // The store the owner of this object uses for everything else (see above).
  Store& store();

 private:
  class Serialized;
  void Run();
  void Enqueue(std::function<void()> job);
  Status CommitOne(Batch& batch);

  Store& target_;
  std::mutex store_mu_;  // one call of target_ at a time
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::unique_ptr<Serialized> store_;
  std::thread thread_;
};

}  // namespace ll::store
