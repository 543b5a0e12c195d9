// responses: `POST /v1/responses` becomes a chat completions request (responses.h) before the
// parse filter, so that everything after it (limits, budget, meter, route) treats it as chat;
// the route filter translates the answer back (RequestState::responses). 400 naming the field
// for what cannot be translated.
#pragma once

#include "core/clock.h"
#include "gateway/filter.h"

namespace ll::gateway {

class ResponsesFilter final : public StreamFilter {
 public:
  explicit ResponsesFilter(const Clock* clock) : clock_(clock) {}
  // Replaces the body with its chat translation and sets `responses`.
  FilterStatus DecodeBody(RequestState& r) override;

 private:
  const Clock* clock_;
};

}  // namespace ll::gateway
