#include "store/fault_store.h"

#include <utility>

#include "core/check.h"

namespace ll::store {

void FaultStore::Inject(CommitFault fault) {
  LL_CHECK(fault.nth >= 1);
  LL_CHECK(!fault.error.ok());
  until_fault_ = fault.nth - 1;
  fault_ = std::move(fault);
}

bool FaultStore::Hits() {
  if (!fault_) return false;
  if (until_fault_ > 0) {
    --until_fault_;
    return false;
  }
  return true;
}

Status FaultStore::Commit(Batch& batch) {
  if (batch.empty()) return StoreWrapper::Commit(batch);
  ++commits_;
  if (!Hits()) {
    Status st = StoreWrapper::Commit(batch);
    if (!st.ok()) ++failed_commits_;
    return st;
  }
  ++failed_commits_;
  ++injected_failures_;
  Status error = fault_->error;
  if (fault_->kind == CommitFault::Kind::kSync) {
    // Written through a copy: the caller's batch stays as a failed commit leaves it. What the
    // wrapped store answers does not matter: the caller is told the sync failed either way.
    Batch written = batch;
    (void)StoreWrapper::Commit(written);
  }
  if (!fault_->sticky) fault_.reset();
  return error;
}

}  // namespace ll::store
