#include "store/commit_thread.h"

#include <cstddef>
#include <future>
#include <iterator>
#include <utility>
#include <vector>

#include "store/store_wrapper.h"

namespace ll::store {

// store(): every call under the store's lock; Commit through the queue (in order).
class CommitThread::Serialized final : public StoreWrapper {
 public:
  explicit Serialized(CommitThread& owner) : StoreWrapper(owner.target_), owner_(owner) {}

  Status Commit(Batch& batch) override {
    std::promise<Status> committed;
    std::future<Status> result = committed.get_future();
    owner_.Enqueue({.batch = nullptr, .done = nullptr, .run = [&] { committed.set_value(owner_.CommitOne(batch)); }});
    return result.get();
  }

 protected:
  std::unique_lock<std::mutex> Guard() override { return std::unique_lock<std::mutex>(owner_.store_mu_); }

 private:
  CommitThread& owner_;
};

CommitThread::CommitThread(Store& target)
    : target_(target), store_(std::make_unique<Serialized>(*this)), thread_([this] { Run(); }) {}

CommitThread::~CommitThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

Store& CommitThread::store() { return *store_; }

void CommitThread::Submit(Batch batch, Done done) {
  Enqueue({.batch = std::make_shared<Batch>(std::move(batch)), .done = std::move(done), .run = nullptr});
}

void CommitThread::Enqueue(Job job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

namespace {

template <typename T>
void Append(std::vector<T>& to, std::vector<T>& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  from.clear();
}

// Moves everything of `from` to the end of `to` (the events' order is their seqs' order).
void Merge(Batch& to, Batch& from) {
  Append(to.tenants, from.tenants);
  Append(to.keys, from.keys);
  Append(to.key_revocations, from.key_revocations);
  Append(to.leases, from.leases);
  Append(to.events, from.events);
  Append(to.internal_jobs, from.internal_jobs);
  Append(to.settings, from.settings);
  Append(to.lease_prices, from.lease_prices);
  Append(to.spot_prices, from.spot_prices);
  Append(to.usage, from.usage);
  Append(to.balances, from.balances);
  Append(to.holds, from.holds);
}

}  // namespace

void CommitThread::CommitTogether(std::vector<Job>& jobs) {
  if (jobs.size() == 1) {
    Status st = CommitOne(*jobs[0].batch);
    if (jobs[0].done) jobs[0].done(std::move(st), *jobs[0].batch);
    return;
  }
  Batch all;
  std::vector<size_t> events;  // how many events each brought
  for (Job& j : jobs) {
    events.push_back(j.batch->events.size());
    Merge(all, *j.batch);
  }
  Status st = CommitOne(all);
  size_t at = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    Batch& b = *jobs[i].batch;
    b.events.assign(std::make_move_iterator(all.events.begin() + static_cast<ptrdiff_t>(at)),
                    std::make_move_iterator(all.events.begin() + static_cast<ptrdiff_t>(at + events[i])));
    at += events[i];
    b.usage_inserted = all.usage_inserted;
    if (jobs[i].done) jobs[i].done(st, b);
  }
}

Status CommitThread::CommitOne(Batch& batch) {
  if (batch.empty()) return Status::Ok();
  std::lock_guard<std::mutex> lock(store_mu_);
  return target_.Commit(batch);
}

void CommitThread::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything handed over is done
    if (jobs_.front().run) {
      std::function<void()> run = std::move(jobs_.front().run);
      jobs_.pop_front();
      lock.unlock();
      run();
      lock.lock();
      continue;
    }
    // Every Submit waiting in a row: one commit.
    std::vector<Job> together;
    while (!jobs_.empty() && !jobs_.front().run) {
      together.push_back(std::move(jobs_.front()));
      jobs_.pop_front();
    }
    lock.unlock();
    CommitTogether(together);
    lock.lock();
  }
}

}  // namespace ll::store
