// A workload's streams on a Session: its log followed (`GET /v1/leases/{id}/logs?follow=true`,
// chunked text/plain until the workload ends) and the metadata service's long poll
// (`spot/instance-action?wait=true`: the answer held until the lease's notice or a timeout).
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/post.hpp>

#include "api/http_session.h"

namespace ll::api::internal {

void Session::StartLogFollow(const Routed& routed, std::chrono::steady_clock::time_point t0) {
  Reply error;
  workload::LogRing* ring = server_.cp()->WorkloadLogs(routed.principal, routed.lease_id, &error);
  if (ring == nullptr) {
    Routed r = routed;
    r.reply = error;
    Respond(r, t0);
    return;
  }
  server_.metrics().Observe(routed.route, 200,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  auto head = std::make_shared<http::response<http::empty_body>>(http::status::ok, 11);
  head->set(http::field::content_type, "text/plain; charset=utf-8");
  head->set(http::field::cache_control, "no-cache");
  BeginChunked(std::move(head));
  log_lease_ = routed.lease_id;
  log_offset_ = ring->begin_offset();
  if (!ring->closed() && !server_.stopping()) {
    // The subscriber holds the session weakly: its destructor unsubscribes.
    std::weak_ptr<Session> weak = shared_from_this();
    log_sub_ = ring->Subscribe([weak] {
      if (auto self = weak.lock(); self && !self->closing_) self->PushLogs();
    });
  }
  // The timer owns the session while it follows (nothing else may be pending between writes);
  // the last chunk's write, or a failed one, cancels it.
  ping_ = std::make_unique<net::steady_timer>(stream_.get_executor());
  ping_->expires_at(net::steady_timer::time_point::max());
  ping_->async_wait([self = shared_from_this()](beast::error_code) {});
  PushLogs();
}

// What the log holds past what was sent; the end once the workload's output is closed.
void Session::PushLogs() {
  workload::Runner* sb = server_.cp()->workloads() != nullptr ? server_.cp()->workloads()->Find(log_lease_) : nullptr;
  if (sb == nullptr) {
    Push("", true);
    return;
  }
  workload::LogRing::Chunk chunk = sb->logs().Read(log_offset_);
  log_offset_ = chunk.next_offset;
  if (!chunk.data.empty()) Push(std::move(chunk.data), false);
  if (chunk.closed || server_.stopping()) {
    if (log_sub_ != 0 && !chunk.closed) sb->logs().Unsubscribe(log_sub_);
    log_sub_ = 0;  // a closed ring dropped its subscribers
    Push("", true);
  }
}

void Session::WaitNotice(const Routed& routed, std::chrono::steady_clock::time_point t0) {
  held_ = true;
  stream_.expires_never();
  std::weak_ptr<Session> weak = shared_from_this();
  // The event comes from inside the control plane's commit: the answer (which reads the
  // control plane again) is posted, not made there.
  token_ = server_.cp()->Subscribe(routed.lease_id, [weak, routed, t0](const LeaseEvent& e) {
    auto self = weak.lock();
    if (!self || !self->held_) return false;
    if (e.type != "reclaim_notice" && !e.final) return true;
    net::post(self->stream_.get_executor(), [self, routed, t0] { self->AnswerNotice(routed, t0); });
    return false;
  });
  ping_ = std::make_unique<net::steady_timer>(stream_.get_executor());
  ping_->expires_after(std::chrono::seconds(routed.wait_s));
  ping_->async_wait([self = shared_from_this(), routed, t0](beast::error_code ec) {
    if (!ec) self->AnswerNotice(routed, t0);
  });
}

void Session::AnswerNotice(const Routed& routed, std::chrono::steady_clock::time_point t0) {
  if (!held_ || closing_) return;
  held_ = false;
  if (ping_) ping_->cancel();
  Routed r = routed;
  r.wait_notice = false;
  r.reply = server_.cp()->MetadataInstanceAction(routed.token);
  Respond(r, t0);
}

}  // namespace ll::api::internal
