#include "gateway/parse_filter.h"

#include <fmt/format.h>

namespace ll::gateway {

namespace {

// Micro-dollars for `tokens` at `per_mtok`, rounded up (a hold must cover any rounding).
Money CostCeil(int64_t tokens, Money per_mtok) {
  const __int128 v = static_cast<__int128>(tokens) * per_mtok.micros;
  return Money::Micros(static_cast<int64_t>((v + 999'999) / 1'000'000));
}

}  // namespace

FilterStatus ParseFilter::DecodeBody(RequestState& r) {
  ParseError pe;
  auto c = ParseApiCall(endpoint_, r.request.body, options_.prefix_bytes, &pe);
  if (!c.ok()) {
    callbacks().SendLocalReply({.status = 400, .code = pe.code, .message = pe.message, .param = pe.param});
    return FilterStatus::kStopIteration;
  }
  r.call = std::move(*c);
  if (!router_.Serves(r.call.model)) {
    callbacks().SendLocalReply({.status = 404,
                                .code = "model_not_found",
                                .message = fmt::format("the model `{}` does not exist", r.call.model),
                                .param = "model"});
    return FilterStatus::kStopIteration;
  }
  r.model_label = r.call.model;
  r.admission = AdmissionFor(r);
  return FilterStatus::kContinue;
}

Admission ParseFilter::AdmissionFor(const RequestState& r) const {
  const ApiCall& call = r.call;
  const int64_t out = call.endpoint == Endpoint::kEmbeddings ? 0
                      : call.max_tokens > 0                  ? call.max_tokens * call.Generated()
                                                             : options_.max_output_tokens * call.Generated();
  const auto tp = prices_.TokenPricesFor(call.model);
  return {.hold_id = r.id,
          .tenant_id = r.key.tenant_id,
          .key_id = r.key.key_id,
          .rpm = r.key.rpm > 0 ? r.key.rpm : options_.rpm,
          .tpm = r.key.tpm > 0 ? r.key.tpm : options_.tpm,
          .tokens = call.EstimatedPromptTokens() + out,
          .amount = CostCeil(call.WorstPromptTokens(), tp.input_per_mtok) + CostCeil(out, tp.output_per_mtok)};
}

}  // namespace ll::gateway
