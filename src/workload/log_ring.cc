#include "workload/log_ring.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/check.h"

namespace ll::workload {

LogRing::LogRing(size_t capacity) : buf_(capacity) { LL_CHECK(capacity > 0); }

void LogRing::Append(std::string_view bytes) {
  if (closed_ || bytes.empty()) return;
  const size_t cap = buf_.size();
  // Only the last `cap` bytes of this append can survive it.
  if (bytes.size() > cap) {
    end_ += bytes.size() - cap;
    bytes.remove_prefix(bytes.size() - cap);
  }
  for (size_t done = 0; done < bytes.size();) {
    const size_t pos = static_cast<size_t>((end_ + done) % cap);
    const size_t n = std::min(bytes.size() - done, cap - pos);
    std::copy_n(bytes.data() + done, n, buf_.begin() + static_cast<std::ptrdiff_t>(pos));
    done += n;
  }
  end_ += bytes.size();
  size_ =
      static_cast<size_t>(std::min<uint64_t>(end_, std::min<uint64_t>(cap, size_ + bytes.size())));
  Notify();
}

void LogRing::Close() {
  if (closed_) return;
  closed_ = true;
  Notify();
  subscribers_.clear();
}

LogRing::Chunk LogRing::Read(uint64_t offset, size_t max_bytes) const {
  Chunk c;
  const uint64_t begin = begin_offset();
  if (offset < begin) {
    c.data = fmt::format("[landlord: {} bytes dropped]\n", begin - offset);
    offset = begin;
  }
  const uint64_t avail = offset < end_ ? end_ - offset : 0;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(avail, max_bytes));
  const size_t cap = buf_.size();
  for (size_t done = 0; done < n;) {
    const size_t pos = static_cast<size_t>((offset + done) % cap);
    const size_t k = std::min(n - done, cap - pos);
    c.data.append(buf_.data() + pos, k);
    done += k;
  }
  c.next_offset = std::min(offset, end_) + n;
  c.closed = closed_ && c.next_offset >= end_;
  return c;
}

uint64_t LogRing::Subscribe(Subscriber fn) {
  const uint64_t id = next_id_++;
  subscribers_.emplace(id, std::move(fn));
  return id;
}

void LogRing::Unsubscribe(uint64_t id) { subscribers_.erase(id); }

void LogRing::Notify() {
  // Copy the ids first: a subscriber may unsubscribe (itself or another) while it runs.
  std::vector<uint64_t> ids;
  for (const auto& [id, fn] : subscribers_) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = subscribers_.find(id);
    if (it == subscribers_.end()) continue;
    Subscriber fn = it->second;  // a copy: the call may erase the entry
    fn();
  }
}

}  // namespace ll::workload
