// The transport's side of the control plane: the one mapping of a Status to HTTP, the error
// body, opening the control plane, and the operational log of its lease events.
#include "api/control_plane.h"

#include "api/ops_log.h"

namespace ll::api {

using nlohmann::json;

namespace {

const char* ErrorType(int status) {
  switch (status) {
    case 401: return "invalid_request_error";  // OpenAI's own (code `invalid_api_key`), as the model API answers
    case 402: return "insufficient_quota";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 503: return "server_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

int StatusToHttp(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kInsufficientFunds: return 402;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kConflict: return 409;
    case StatusCode::kResourceExhausted: return 409;  // no capacity now: the request conflicts with the fleet's state
    case StatusCode::kRateLimited: return 429;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kIoError:
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

Reply ErrorReply(StatusCode code, std::string_view reason, std::string message, std::string_view param) {
  return HttpErrorReply(StatusToHttp(code), reason, std::move(message), param);
}

Reply ErrorReply(const Status& st) {
  return ErrorReply(st.code(), st.reason().empty() ? StatusCodeName(st.code()) : st.reason(), st.message(), st.param());
}

Reply HttpErrorReply(int status, std::string_view code, std::string message, std::string_view param) {
  Reply r;
  r.status = status;
  r.body = {{"error",
             {{"message", std::move(message)},
              {"type", ErrorType(status)},
              {"code", std::string(code)},
              {"param", param.empty() ? json(nullptr) : json(std::string(param))}}}};
  return r;
}

Result<std::unique_ptr<ControlPlane>> ControlPlane::Open(const ServeConfig& config, const sim::Trace& trace,
                                                         store::Store* store, const Clock* wall,
                                                         const std::string& admin_key_env) {
  std::unique_ptr<ControlPlane> cp(new ControlPlane(config, trace, store, wall));
  LL_RETURN_IF_ERROR(cp->Load(wall, admin_key_env));
  return cp;
}

void ControlPlane::OnPublished(const std::vector<store::LeaseEventRecord>& events) {
  if (!oplog::Enabled(oplog::Level::kInfo)) return;
  for (const store::LeaseEventRecord& e : events) {
    oplog::LeaseEvent(e.seq, e.lease_id, e.tenant_id, e.type, json::parse(e.data, nullptr, false));
  }
}

}  // namespace ll::api
