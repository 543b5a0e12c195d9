// One request's run through its filters (filter.h): Envoy's active stream, without the
// network. It decodes the headers through every filter, then the body; a filter that stops
// resumes it (ContinueDecoding) when its answer comes, or ends it. The response goes to the
// Downstream with the request's own headers; completion runs the filters' EncodeComplete from
// the last to the first before the answer's last bytes.
//
// Single-threaded: every call on the gateway's thread. Held by shared_ptr (KeepAlive).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/filter.h"

namespace ll::gateway {

// Responses by (model label, status), for the metrics.
using StatusCounts = std::map<std::pair<std::string, int>, int64_t>;

class FilterChain : public FilterCallbacks, public std::enable_shared_from_this<FilterChain> {
 public:
  // `codes` (not null) outlives the chain.
  FilterChain(RequestState state, std::shared_ptr<Downstream> down, StatusCounts* codes);
  ~FilterChain() override = default;

  // REQUIRES: before Start.
  void Add(std::unique_ptr<StreamFilter> filter);
  // Decodes the request through the filters. A chain whose filters all continue past the body
  // has nobody to answer it: it ends with a 500.
  void Start();
  // Shutdown: every filter drops what is pending.
  void Abort();
  const RequestState& state() const { return state_; }

  // FilterCallbacks.
  void ContinueDecoding() override;
  void SendLocalReply(LocalReply reply) override;
  std::shared_ptr<void> KeepAlive() override { return shared_from_this(); }
  void Send(int status, std::string content_type, std::string body, Headers extra = {}) override;
  void SendListing(std::string body) override;
  void BeginStream(Headers extra) override;
  void Chunk(std::string data) override { down_->Chunk(std::move(data)); }
  void EndStream() override { down_->End(); }
  bool downstream_open() const override { return down_->open(); }
  void Complete(Completion c, std::function<void(Status)> last_bytes) override;
  void ContinueEncoding(Status st) override;

 private:
  enum class Phase { kHeaders, kBody };
  void Decode();
  void Encode();
  Downstream::Head HeadFor(int status, std::string content_type) const;

  RequestState state_;
  std::shared_ptr<Downstream> down_;
  StatusCounts* codes_;
  std::vector<std::unique_ptr<StreamFilter>> filters_;
  // Decoding: the filter at `next_` has it. `decoding_`: inside that filter's call (an answer
  // that comes before it returns only marks `decode_resumed_`).
  Phase phase_ = Phase::kHeaders;
  size_t next_ = 0;
  bool decoding_ = false, decode_resumed_ = false;
  bool ended_ = false;  // answered or completed: decoding is over
  // Completion: filters before `encode_next_` have still to see it.
  bool completed_ = false;
  Completion completion_;
  size_t encode_next_ = 0;
  bool encoding_ = false, encode_resumed_ = false;
  Status encode_status_;
  std::function<void(Status)> last_bytes_;
};

}  // namespace ll::gateway
