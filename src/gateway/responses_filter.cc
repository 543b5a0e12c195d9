#include "gateway/responses_filter.h"

#include "gateway/responses.h"

namespace ll::gateway {

FilterStatus ResponsesFilter::DecodeBody(RequestState& r) {
  auto req = std::make_shared<ResponsesRequest>();
  // The ids carry the request's (unique across restarts): req_X → resp_X, msg_X.
  const std::string_view unique = std::string_view(r.id).substr(r.id.find('_') + 1);
  req->id = "resp_" + std::string(unique);
  req->message_id = "msg_" + std::string(unique);
  req->created_at = clock_->Now().ms / 1000;
  ParseError pe;
  auto chat = ResponsesToChat(r.request.body, req.get(), &pe);
  if (!chat.ok()) {
    callbacks().SendLocalReply({.status = 400, .code = pe.code, .message = pe.message, .param = pe.param});
    return FilterStatus::kStopIteration;
  }
  r.request.body = std::move(*chat);
  r.responses = std::move(req);
  return FilterStatus::kContinue;
}

}  // namespace ll::gateway
