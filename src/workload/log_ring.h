// A workload's stdout and stderr, bounded: the newest `capacity` bytes of the stream are kept,
// addressed by their offset in the whole stream so a follower resumes where it stopped. A read
// from an offset that was dropped starts with a marker line `[landlord: N bytes dropped]`.
// Not thread-safe: owned by the server's (single) Asio thread, like the sandbox that fills it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ll::workload {

class LogRing {
 public:
  // REQUIRES: capacity > 0.
  explicit LogRing(size_t capacity);

  struct Chunk {
    std::string data;          // the marker line (if any) then the bytes from `offset`
    uint64_t next_offset = 0;  // where the next read continues
    bool closed = false;       // the stream ended and everything up to it was read
  };

  // Adds bytes at the end, dropping the oldest beyond capacity; then calls the subscribers.
  void Append(std::string_view bytes);
  // The stream has ended (the workload exited): subscribers are called once more, then dropped.
  void Close();

  // Up to `max_bytes` of stream data from `offset` (a marker line, if some was dropped, does not
  // count against it). An offset past the end reads nothing.
  Chunk Read(uint64_t offset, size_t max_bytes = SIZE_MAX) const;

  // Follow mode: `fn` runs after every Append and at Close. The id cancels it; a subscriber may
  // unsubscribe itself (or others) from inside its call.
  using Subscriber = std::function<void()>;
  uint64_t Subscribe(Subscriber fn);
  void Unsubscribe(uint64_t id);

  uint64_t begin_offset() const { return end_ - size_; }  // the oldest byte kept
  uint64_t end_offset() const { return end_; }            // bytes written in all
  bool closed() const { return closed_; }
  size_t capacity() const { return buf_.size(); }

 private:
  void Notify();

  std::vector<char> buf_;  // circular; the byte at stream offset o is buf_[o % capacity]
  size_t size_ = 0;        // bytes kept
  uint64_t end_ = 0;
  bool closed_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Subscriber> subscribers_;
};

}  // namespace ll::workload
