// Server-Sent Events on a Session: a lease's event stream (`GET /v1/leases/{id}/events`, resumed
// after Last-Event-ID), the owner dashboard's live feed, and the chunked writer they share with
// the gateway's streamed answers.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "api/http_session.h"

namespace ll::api::internal {
namespace {

std::string FormatEvent(const LeaseEvent& e) {
  return fmt::format("id: {}\nevent: {}\ndata: {}\n\n", e.seq, e.type, e.data);
}

}  // namespace

// The dashboard's feed: a `dashboard` snapshot and the `fleet` map at once, then a snapshot
// every second and the map when it changed (checked every 2 s), both skipped while the reader
// is behind, and every lease's events as they are committed (`event: <type>`, as on a lease's
// own stream).
void Session::StartDashboardStream(std::chrono::steady_clock::time_point t0) {
  server_.metrics().Observe("GET /admin/stream", 200,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  auto head = std::make_shared<http::response<http::empty_body>>(http::status::ok, 11);
  head->set(http::field::content_type, "text/event-stream");
  head->set(http::field::cache_control, "no-cache");
  BeginChunked(std::move(head));
  Push(": landlord dashboard\n\n", false);
  if (server_.stopping()) {
    Push("", true);
    return;
  }
  std::weak_ptr<Session> weak = shared_from_this();
  token_ = server_.cp()->Subscribe("*", [weak](const LeaseEvent& e) {
    auto self = weak.lock();
    if (!self || self->closing_) return false;
    self->Push(FormatEvent(e), false);
    return true;
  });
  PushDashboard();
}

void Session::PushDashboard() {
  if (closing_) return;
  // A reader that has not taken the last snapshots yet gets no new one (they would only pile
  // up: a 100,000-GPU map is a few hundred KB); lease events still go out.
  const bool behind = out_.size() > 2;
  if (!behind) Push(fmt::format("event: dashboard\ndata: {}\n\n", server_.DashboardText()), false);
  if (!behind && pushes_++ % 2 == 0) {
    const std::string& map = server_.FleetMapText();
    if (map != last_map_) {
      Push(fmt::format("event: fleet\ndata: {}\n\n", map), false);
      last_map_ = map;
    }
  }
  ping_ = std::make_unique<net::steady_timer>(stream_.get_executor());
  ping_->expires_after(std::chrono::seconds(1));
  // The timer's handler owns the session while it streams (nothing else may be pending).
  ping_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->closing_) return;
    self->PushDashboard();
  });
}

void Session::StartStream(const Routed& routed, std::chrono::steady_clock::time_point t0) {
  if (routed.lease_id == "*") {
    StartDashboardStream(t0);
    return;
  }
  int64_t after = 0;
  std::string_view last = Sv(parser_->get()["Last-Event-ID"]);
  if (!last.empty()) {
    try {
      after = std::stoll(std::string(last));
    } catch (...) {
      after = 0;
    }
  }
  auto past = server_.cp()->LeaseEvents(routed.principal, routed.lease_id, after);
  if (!past.ok()) {
    Routed r = routed;
    r.reply = ErrorReply(StatusCode::kNotFound, "lease_not_found", past.status().message(), "id");
    Respond(r, t0);
    return;
  }
  server_.metrics().Observe(routed.route, 200,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  auto head = std::make_shared<http::response<http::empty_body>>(http::status::ok, 11);
  head->set(http::field::content_type, "text/event-stream");
  head->set(http::field::cache_control, "no-cache");
  BeginChunked(std::move(head));
  bool final = false;
  Push(": landlord lease events\n\n", false);
  for (const auto& e : *past) {
    Push(FormatEvent(e), false);
    final = final || e.final;
  }
  if (final || server_.stopping()) {
    Push("", true);
    return;
  }
  std::weak_ptr<Session> weak = shared_from_this();
  token_ = server_.cp()->Subscribe(routed.lease_id, [weak](const LeaseEvent& e) {
    auto self = weak.lock();
    if (!self || self->closing_) return false;
    self->Push(FormatEvent(e), false);
    if (e.final) {
      self->Push("", true);
      return false;
    }
    return true;
  });
  KeepAlive();
}

void Session::BeginChunked(std::shared_ptr<http::response<http::empty_body>> head) {
  streaming_ = true;
  stream_.expires_never();
  stream_head_ = std::move(head);
  stream_head_->set(http::field::server, "landlord");
  stream_head_->chunked(true);
  stream_sr_ = std::make_shared<http::response_serializer<http::empty_body>>(*stream_head_);
  writing_ = true;
  http::async_write_header(stream_, *stream_sr_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->writing_ = false;
    if (ec) {
      self->closing_ = true;
      return;
    }
    self->WriteNext();
  });
}

void Session::KeepAlive() {
  ping_ = std::make_unique<net::steady_timer>(stream_.get_executor());
  ping_->expires_after(std::chrono::seconds(15));
  // The timer's handler owns the session while it streams (nothing else may be pending).
  ping_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->closing_) return;
    self->Push(": ping\n\n", false);
    self->KeepAlive();
  });
}

void Session::Push(std::string chunk, bool last) {
  if (!out_.empty() && out_.back().second) return;  // already ended
  if (out_.size() > 10'000) {  // a watcher that does not read: drop it
    closing_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    return;
  }
  out_.emplace_back(std::move(chunk), last);
  if (!writing_) WriteNext();
}

void Session::WriteNext() {
  if (writing_ || out_.empty()) return;
  writing_ = true;
  auto [text, last] = out_.front();
  auto buf = std::make_shared<std::string>(std::move(text));
  auto done = [self = shared_from_this(), buf, last = last](beast::error_code ec, size_t) {
    self->writing_ = false;
    self->out_.pop_front();
    if (ec) {
      self->closing_ = true;
      self->out_.clear();
      if (self->ping_) self->ping_->cancel();
      return;
    }
    if (last && self->proxying_ && self->proxy_keep_ && !self->server_.stopping()) {
      // A gateway stream ended: the connection takes the next request.
      self->proxying_ = false;
      self->streaming_ = false;
      self->Read();
      return;
    }
    if (last) {
      self->closing_ = true;
      self->proxying_ = false;
      if (self->ping_) self->ping_->cancel();
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    self->WriteNext();
  };
  if (last) {
    net::async_write(stream_, http::make_chunk_last(), std::move(done));
  } else {
    net::async_write(stream_, http::make_chunk(net::buffer(*buf)), std::move(done));
  }
}

}  // namespace ll::api::internal
