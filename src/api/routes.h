// Request routing: method + target + Authorization + body → ControlPlane call → Reply.
// Transport-independent (the HTTP server, the fuzz target and tests share it).
#pragma once

#include <string>
#include <string_view>

#include "api/control_plane.h"

namespace ll::api {

struct Request {
  std::string_view method;
  std::string_view target;         // path and query
  std::string_view authorization;  // the header's value
  std::string_view body;
};

struct Routed {
  Reply reply;
  std::string route;  // a label for metrics: "POST /v1/leases", "GET /v1/leases/{id}", ...
  // Set for GET /v1/leases/{id}/events by an authorised caller, and for the owner's
  // GET /admin/stream (lease_id `*`): the server streams instead.
  bool stream = false;
  std::string lease_id;
  Principal principal;
  // The route commits as a group (standalone gateways' holds and settlements): what it wrote is
  // queued, and the server answers once the next group commit made it durable.
  bool group_commit = false;
  // GET /v1/leases/{id}/logs?follow=true (lease_id, principal): the server streams the log.
  bool follow_logs = false;
  // GET /metadata/{token}/…/spot/instance-action?wait=true before the notice: the server holds
  // the answer until the lease's notice (or its end) or `wait_s` seconds, then answers it anew.
  bool wait_notice = false;
  std::string token;
  int64_t wait_s = 0;
};

Routed Route(ControlPlane& cp, const Request& req);

// The JSON text of a reply as the server sends it. Request text echoed in messages (a path, a
// field value) may be invalid UTF-8: it is replaced (U+FFFD), never a throw.
std::string ReplyText(const Reply& reply);

}  // namespace ll::api
