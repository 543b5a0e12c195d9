// parse: reads only the fields the filters need (api_call.h; 400 naming the field), refuses a
// model no replica serves (404 model_not_found), and works out what the request asks of the
// limits and the budget (RequestState::admission), both at once because a remote ledger takes
// them in one call:
//
//   tokens  the prompt's estimate + the output ceiling (`max_tokens`, else the gateway's
//           `max_output_tokens`, times the completions generated; none for embeddings)
//   amount  the worst case at the model's prices: every body byte a prompt token, plus the
//           output ceiling, each rounded up (a hold must cover any rounding)
#pragma once

#include "gateway/api_call.h"
#include "gateway/filter.h"
#include "gateway/options.h"
#include "gateway/router.h"
#include "market/price_book.h"

namespace ll::gateway {

class ParseFilter final : public StreamFilter {
 public:
  // `options`, `prices` and `router` outlive the filter.
  ParseFilter(Endpoint endpoint, const GatewayOptions& options, const market::PriceBook& prices,
              const Router& router)
      : endpoint_(endpoint), options_(options), prices_(prices), router_(router) {}
  // Sets `call`, `model_label` and `admission`.
  FilterStatus DecodeBody(RequestState& r) override;

 private:
  Admission AdmissionFor(const RequestState& r) const;
  Endpoint endpoint_;
  const GatewayOptions& options_;
  const market::PriceBook& prices_;
  const Router& router_;
};

}  // namespace ll::gateway
