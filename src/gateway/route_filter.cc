#include "gateway/route_filter.h"

#include <algorithm>
#include <array>
#include <limits>

#include <boost/asio/connect.hpp>
#include <fmt/format.h>

#include "gateway/http_util.h"
#include "gateway/upstream_event.h"

namespace ll::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

std::string UsageLost(const Status& durable) {
  return fmt::format("the answer's usage could not be recorded: {}", durable.message());
}

}  // namespace

FilterStatus RouteFilter::DecodeBody(RequestState& r) {
  r_ = &r;
  // Built once; every attempt sends it (with its replica's Host).
  upbody_ = UpstreamBody(r.request.body, r.call, up_.options.max_output_tokens);
  r.request.body = std::string();
  Attempt();
  return FilterStatus::kStopIteration;
}

void RouteFilter::CloseConn() {
  if (conn_) {
    beast::error_code ec;
    conn_->socket().shutdown(tcp::socket::shutdown_both, ec);
    conn_->close();
    conn_.reset();
  }
}

void RouteFilter::EndRoute() {
  if (!r_->replica.empty()) up_.router.End(r_->replica, route_tokens_);
}

void RouteFilter::Attempt() {
  const ApiCall& call = r_->call;
  Replica* rep = r_->attempt < up_.options.max_attempts && !up_.stopping
                     ? up_.router.Pick(call.model, call.prefix_hash, tried_, up_.clock->Now())
                     : nullptr;
  if (rep == nullptr) {
    r_->replica.clear();
    callbacks().SendLocalReply(
        {.status = 503,
         .code = "no_replica_available",
         .message = tried_.empty() ? fmt::format("no replica of `{}` is available", call.model)
                                   : fmt::format("no replica of `{}` could take the request ({})", call.model, errors_),
         .type = "server_error"});
    return;
  }
  ++r_->attempt;
  r_->replica = rep->id;
  host_ = rep->host;
  port_ = rep->port;
  route_tokens_ = std::max<int64_t>(1, r_->admission.tokens);
  up_.router.Begin(rep, route_tokens_);
  auto& idle = up_.pool.idle[r_->replica];
  reused_ = !idle.empty();
  if (reused_) {
    conn_ = std::move(idle.back());
    idle.pop_back();
    Send();
    return;
  }
  Connect();
}

void RouteFilter::Connect() {
  conn_ = std::make_unique<beast::tcp_stream>(up_.ioc);
  auto& eps = up_.pool.endpoints[r_->replica];
  if (eps.empty()) {
    beast::error_code ec;
    eps = up_.pool.resolver.resolve(host_, port_, ec);
    if (ec) {
      FailedBeforeFirstByte(fmt::format("resolve {}:{}: {}", host_, port_, ec.message()));
      return;
    }
  }
  conn_->expires_after(std::chrono::milliseconds(up_.options.connect_timeout.ms));
  conn_->async_connect(eps, [this, keep = callbacks().KeepAlive()](beast::error_code ec, const tcp::endpoint&) {
    if (ec) {
      FailedBeforeFirstByte(fmt::format("connect: {}", ec.message()));
      return;
    }
    beast::error_code ignored;
    conn_->socket().set_option(tcp::no_delay(true), ignored);
    Send();
  });
}

void RouteFilter::Send() {
  // What a failed attempt read is dropped.
  status_ = 0;
  streaming_ = false;
  body_.clear();
  pending_.clear();
  has_usage_ = done_seen_ = false;
  delivered_ = 0;
  // One string and one gather write rather than Beast's fields and serializer: this is the hot
  // path, and every value here is the gateway's own (host and port from the config or a replica
  // registration, the request id, the length).
  uphead_.clear();
  fmt::format_to(std::back_inserter(uphead_),
                 "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nx-request-id: {}\r\n"
                 "Content-Length: {}\r\n\r\n",
                 EndpointPath(r_->call.endpoint), host_, port_, r_->id, upbody_.size());
  conn_->expires_after(std::chrono::milliseconds(up_.options.first_byte_timeout.ms));
  std::array<net::const_buffer, 2> buffers{net::buffer(uphead_), net::buffer(upbody_)};
  net::async_write(*conn_, buffers, [this, keep = callbacks().KeepAlive()](beast::error_code ec, size_t) {
    if (ec) {
      FailedBeforeFirstByte(fmt::format("send: {}", ec.message()));
      return;
    }
    ReadHeader();
  });
}

void RouteFilter::ReadHeader() {
  buf_.clear();
  parser_.emplace();
  // Streams are unbounded; whole bodies are capped in ReadBody.
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
  http::async_read_header(*conn_, buf_, *parser_, [this, keep = callbacks().KeepAlive()](beast::error_code e, size_t) {
    if (e == beast::error::timeout) {
      // Slow, not broken: a server sends a whole answer's header when it is done, so a long
      // generation looks like this. Trying another replica would only generate it again.
      TimedOut();
      return;
    }
    if (e) {
      FailedBeforeFirstByte(fmt::format("no response: {}", e.message()));
      return;
    }
    OnHeader();
  });
}

void RouteFilter::TimedOut() {
  CloseConn();
  EndRoute();
  // What the replica may have generated never reached anyone: nothing is billed.
  callbacks().SendLocalReply(
      {.status = 504,
       .code = "upstream_timeout",
       .message = fmt::format("the model replica `{}` sent no answer within {} s (`[gateway] first_byte_timeout_s`)",
                              r_->replica, up_.options.first_byte_timeout.ms / 1000),
       .type = "server_error"});
}

void RouteFilter::FailedBeforeFirstByte(const std::string& why) {
  CloseConn();
  EndRoute();
  if (!callbacks().downstream_open()) {  // the client left while we were trying
    callbacks().Complete({}, nullptr);
    return;
  }
  if (reused_ && !stale_retried_ && !up_.stopping && status_ == 0) {
    // A kept-alive connection the replica had closed: once more on a fresh one, same replica.
    stale_retried_ = true;
    --r_->attempt;
    Replica* rep = up_.router.Find(r_->replica);
    if (rep != nullptr) {
      up_.router.Begin(rep, route_tokens_);
      reused_ = false;
      Connect();
      return;
    }
  }
  ++up_.stats.upstream_failures;
  ++up_.stats.retries;
  up_.router.Failed(r_->replica, up_.clock->Now());
  tried_.push_back(r_->replica);
  errors_ += fmt::format("{}{}: {}", errors_.empty() ? "" : "; ", r_->replica, why);
  stale_retried_ = false;
  Attempt();
}

void RouteFilter::OnHeader() {
  auto& res = parser_->get();
  status_ = static_cast<int>(res.result_int());
  // A replica that is overloaded or broken answers 502/503/504: try another while nothing has
  // reached the client.
  if (status_ == 502 || status_ == 503 || status_ == 504) {
    FailedBeforeFirstByte(fmt::format("HTTP {}", status_));
    return;
  }
  const std::string_view ct = Sv(res[http::field::content_type]);
  streaming_ = status_ == 200 && ct.rfind("text/event-stream", 0) == 0;
  if (streaming_) {
    callbacks().BeginStream(OneHeader("cache-control", "no-cache"));
    if (r_->responses) {
      responses_ = std::make_unique<ResponsesStream>(r_->responses.get());
      callbacks().Chunk(responses_->Start());
    }
  }
  if (parser_->is_done()) {  // no body (Content-Length: 0, 204): nothing more to read
    Finish();
    return;
  }
  ReadBody();
}

void RouteFilter::ReadBody() {
  if (streaming_ && !callbacks().downstream_open()) {
    FailedMidStream("the client went away");
    return;
  }
  parser_->get().body().data = chunk_;
  parser_->get().body().size = sizeof(chunk_);
  conn_->expires_after(std::chrono::milliseconds(up_.options.idle_timeout.ms));
  // read_some: whatever arrived, not a full buffer (a stream's events go on as they come).
  http::async_read_some(*conn_, buf_, *parser_, [this, keep = callbacks().KeepAlive()](beast::error_code ec, size_t) {
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      if (streaming_) {
        FailedMidStream(ec.message());
      } else {
        FailedBeforeFirstByte(fmt::format("response body: {}", ec.message()));
      }
      return;
    }
    const size_t n = sizeof(chunk_) - parser_->get().body().size;
    OnBytes(chunk_, n);
    if (parser_->is_done()) {
      Finish();
    } else if (!streaming_ && body_.size() > up_.options.max_response_bytes) {
      FailedBeforeFirstByte("the response is too large");
    } else {
      ReadBody();
    }
  });
}

void RouteFilter::OnBytes(const char* data, size_t n) {
  if (!streaming_) {
    body_.append(data, n);
    return;
  }
  pending_.append(data, n);
  std::string out;
  size_t start = 0;
  for (;;) {
    size_t end = pending_.find("\n\n", start);
    size_t sep = 2;
    const size_t crlf = pending_.find("\r\n\r\n", start);
    if (crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
      end = crlf;
      sep = 4;
    }
    if (end == std::string::npos) break;
    OnEvent(std::string_view(pending_.data() + start, end + sep - start), &out);
    start = end + sep;
  }
  pending_.erase(0, start);
  if (!out.empty()) callbacks().Chunk(std::move(out));
}

void RouteFilter::OnEvent(std::string_view event, std::string* out) {
  const StreamEvent e = ClassifyStreamEvent(EventData(event));
  bool forward = true;
  if (e.done) {
    done_seen_ = true;
    holding_ = true;
  }
  if (e.usage) {
    has_usage_ = true;
    usage_ = *e.usage;
  }
  if (e.usage_only) {
    // The usage chunk goes to the client only if it asked for usage.
    forward = r_->call.client_wants_usage;
    holding_ = true;
  }
  // A chunk with generated text; the role-only first delta and the finish chunk carry none.
  if (e.has_tokens) ++delivered_;
  if (!forward) return;
  std::string& to = holding_ ? tail_ : *out;
  if (responses_) {
    if (!e.done && !e.usage_only) to += responses_->OnChunk(EventData(event));
  } else {
    to.append(event);
  }
}

void RouteFilter::Finish() {
  const bool keep_alive = parser_->get().keep_alive();
  EndRoute();
  if (keep_alive && conn_) {
    auto& idle = up_.pool.idle[r_->replica];
    if (idle.size() < ConnectionPool::kMaxIdle) {
      conn_->expires_never();
      idle.push_back(std::move(conn_));
    }
  }
  CloseConn();
  auto keep = callbacks().KeepAlive();
  if (streaming_) {
    billed_ = has_usage_ ? usage_ : UpstreamUsage{r_->call.EstimatedPromptTokens(), delivered_};
    tail_ += responses_ ? responses_->Complete(billed_) : pending_;
    pending_.clear();
    callbacks().Complete({.input_tokens = billed_.prompt_tokens, .output_tokens = billed_.completion_tokens},
                         [this, keep](Status st) { EndStream(st); });
    return;
  }
  std::string ct(Sv(parser_->get()[http::field::content_type]));
  auto answer = [this, keep, ct](Status st) { Answer(st, ct); };
  const std::optional<UpstreamUsage> usage =
      status_ >= 200 && status_ < 300 ? ReadUsage(body_) : std::nullopt;
  if (usage) {
    billed_ = *usage;
    callbacks().Complete({.input_tokens = usage->prompt_tokens, .output_tokens = usage->completion_tokens}, answer);
  } else if (status_ >= 200 && status_ < 300) {
    // An upstream that reports no usage: the prompt's estimate and the answer's bytes / 4.
    billed_ = {r_->call.EstimatedPromptTokens(), static_cast<int64_t>(body_.size() + 3) / 4};
    callbacks().Complete({.input_tokens = billed_.prompt_tokens, .output_tokens = billed_.completion_tokens}, answer);
  } else {
    callbacks().Complete({}, answer);  // an error answer: nothing was generated
  }
}

void RouteFilter::EndStream(const Status& durable) {
  if (durable.ok()) {
    if (!tail_.empty()) callbacks().Chunk(std::move(tail_));
  } else {
    // Never `[DONE]` for an answer whose usage may be lost.
    callbacks().Chunk(ErrorEvent("ledger_unavailable", UsageLost(durable), "server_error"));
  }
  callbacks().EndStream();
}

void RouteFilter::Answer(const Status& durable, const std::string& content_type) {
  if (!durable.ok()) {
    callbacks().SendLocalReply(
        {.status = 503, .code = "ledger_unavailable", .message = UsageLost(durable), .type = "server_error"});
    return;
  }
  if (r_->responses && status_ >= 200 && status_ < 300) {
    callbacks().Send(status_, "application/json", ChatToResponse(body_, *r_->responses, billed_));
    return;
  }
  callbacks().Send(status_, content_type.empty() ? "application/json" : content_type, std::move(body_));
}

std::string RouteFilter::ErrorEvent(std::string_view code, const std::string& message, std::string_view type) {
  if (responses_) return responses_->Error(code, message);
  return fmt::format("data: {}\n\n", ErrorJson(code, message, "", type));
}

void RouteFilter::FailedMidStream(const std::string& why) {
  CloseConn();
  EndRoute();
  ++up_.stats.interrupted_streams;
  if (callbacks().downstream_open()) {
    // Not a client going away: the replica failed.
    ++up_.stats.upstream_failures;
    up_.router.Failed(r_->replica, up_.clock->Now());
    callbacks().Chunk(ErrorEvent("upstream_failed",
                                 fmt::format("the model replica failed mid-stream ({}); {} chunks were delivered and "
                                             "only they are billed",
                                             why, delivered_),
                                 "server_error"));
    callbacks().EndStream();
  }
  // What reached the client: the prompt (it was read) and the chunks delivered.
  callbacks().Complete({.input_tokens = r_->call.EstimatedPromptTokens(), .output_tokens = delivered_}, nullptr);
}

}  // namespace ll::gateway
