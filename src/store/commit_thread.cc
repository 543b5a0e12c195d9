#include "store/commit_thread.h"

#include <future>
#include <utility>

#include "store/store_wrapper.h"

namespace ll::store {

// store(): every call under the store's lock; Commit through the queue (in order).
class CommitThread::Serialized final : public StoreWrapper {
 public:
  explicit Serialized(CommitThread& owner) : StoreWrapper(owner.target_), owner_(owner) {}

  Status Commit(Batch& batch) override {
    std::promise<Status> committed;
    std::future<Status> result = committed.get_future();
    owner_.Enqueue([&] { committed.set_value(owner_.CommitOne(batch)); });
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
  // std::function needs a copyable callable: the batch lives in a shared_ptr.
  auto b = std::make_shared<Batch>(std::move(batch));
  Enqueue([this, b, done = std::move(done)] {
    Status st = CommitOne(*b);
    if (done) done(std::move(st), *b);
  });
}

void CommitThread::Enqueue(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
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
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

}  // namespace ll::store
