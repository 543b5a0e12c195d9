#include "gateway/filter_chain.h"

#include "gateway/http_util.h"

namespace ll::gateway {

FilterChain::FilterChain(RequestState state, std::shared_ptr<Downstream> down, StatusCounts* codes)
    : state_(std::move(state)), down_(std::move(down)), codes_(codes) {
  filters_.reserve(8);  // a model call's whole chain without growing (Gateway::AddFilters)
}

void FilterChain::Add(std::unique_ptr<StreamFilter> filter) {
  filter->SetCallbacks(this);
  filters_.push_back(std::move(filter));
}

void FilterChain::Start() { Decode(); }

void FilterChain::Abort() {
  for (auto& f : filters_) f->Abort();
}

void FilterChain::Decode() {
  while (!ended_) {
    if (next_ == filters_.size()) {
      if (phase_ == Phase::kBody) {
        SendLocalReply({.status = 500, .code = "internal_error", .message = "no filter answered the request",
                        .type = "server_error"});
        return;
      }
      phase_ = Phase::kBody;
      next_ = 0;
      continue;
    }
    StreamFilter& f = *filters_[next_];
    decoding_ = true;
    decode_resumed_ = false;
    const FilterStatus s = phase_ == Phase::kHeaders ? f.DecodeHeaders(state_) : f.DecodeBody(state_);
    decoding_ = false;
    if (s == FilterStatus::kStopIteration && !decode_resumed_) return;  // ContinueDecoding goes on
    ++next_;
  }
}

void FilterChain::ContinueDecoding() {
  if (ended_) return;  // a reply ended it meanwhile
  if (decoding_) {  // answered before the filter returned: Decode goes on when it does
    decode_resumed_ = true;
    return;
  }
  ++next_;
  Decode();
}

void FilterChain::SendLocalReply(LocalReply reply) {
  Complete({}, nullptr);  // nothing used
  Send(reply.status, "application/json", ErrorJson(reply.code, reply.message, reply.param, reply.type),
       std::move(reply.headers));
}

void FilterChain::Complete(Completion c, std::function<void(Status)> last_bytes) {
  ended_ = true;
  if (completed_) {
    if (last_bytes) last_bytes(Status::Ok());
    return;
  }
  completed_ = true;
  c.last_bytes_wait = static_cast<bool>(last_bytes);
  completion_ = c;
  last_bytes_ = std::move(last_bytes);
  encode_next_ = filters_.size();
  Encode();
}

void FilterChain::Encode() {
  while (encode_next_ > 0) {
    StreamFilter& f = *filters_[encode_next_ - 1];
    encoding_ = true;
    encode_resumed_ = false;
    const FilterStatus s = f.EncodeComplete(state_, completion_);
    encoding_ = false;
    if (s == FilterStatus::kStopIteration && !encode_resumed_) return;  // ContinueEncoding goes on
    --encode_next_;
  }
  if (auto done = std::exchange(last_bytes_, nullptr)) done(encode_status_);
}

void FilterChain::ContinueEncoding(Status st) {
  if (!st.ok() && encode_status_.ok()) encode_status_ = std::move(st);
  if (encoding_) {
    encode_resumed_ = true;
    return;
  }
  if (encode_next_ == 0) return;  // not stopped: nothing to resume
  --encode_next_;
  Encode();
}

Downstream::Head FilterChain::HeadFor(int status, std::string content_type) const {
  Downstream::Head h;
  h.status = status;
  h.content_type = std::move(content_type);
  h.headers.reserve(10);  // these, and the few a reply adds, without growing
  h.headers.emplace_back("x-request-id", state_.id);
  const RateLimits::Decision& l = state_.limits;
  if (l.limit_requests > 0) {
    h.headers.emplace_back("x-ratelimit-limit-requests", std::to_string(l.limit_requests));
    h.headers.emplace_back("x-ratelimit-remaining-requests", std::to_string(l.remaining_requests));
    h.headers.emplace_back("x-ratelimit-reset-requests", FormatResetDuration(l.reset_requests));
  }
  if (l.limit_tokens > 0) {
    h.headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(l.limit_tokens));
    h.headers.emplace_back("x-ratelimit-remaining-tokens", std::to_string(l.remaining_tokens));
    h.headers.emplace_back("x-ratelimit-reset-tokens", FormatResetDuration(l.reset_tokens));
  }
  if (!state_.replica.empty()) h.headers.emplace_back("x-landlord-replica", state_.replica);
  return h;
}

void FilterChain::Send(int status, std::string content_type, std::string body, Headers extra) {
  ++(*codes_)[{state_.model_label, status}];
  Downstream::Head h = HeadFor(status, std::move(content_type));
  for (auto& kv : extra) h.headers.push_back(std::move(kv));
  down_->Send(std::move(h), std::move(body));
}

void FilterChain::SendListing(std::string body) { down_->Send(HeadFor(200, "application/json"), std::move(body)); }

void FilterChain::BeginStream(Headers extra) {
  ++(*codes_)[{state_.model_label, 200}];
  Downstream::Head h = HeadFor(200, "text/event-stream");
  for (auto& kv : extra) h.headers.push_back(std::move(kv));
  down_->Begin(std::move(h));
}

}  // namespace ll::gateway
