#include "gateway/models_filter.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ll::gateway {

std::string ModelCatalog::Json(const std::string& model) const {
  auto it = created_.find(model);
  const int64_t created = it != created_.end() ? it->second : started_s_;
  return fmt::format("{{\"id\":{},\"object\":\"model\",\"created\":{},\"owned_by\":\"landlord\"}}",
                     nlohmann::json(model).dump(), created);
}

FilterStatus ModelsFilter::DecodeHeaders(RequestState&) {
  if (!id_) {
    std::string data;
    for (const std::string& m : router_.Models()) data += (data.empty() ? "" : ",") + catalog_.Json(m);
    callbacks().SendListing(fmt::format("{{\"object\":\"list\",\"data\":[{}]}}", data));
  } else if (!router_.Serves(*id_)) {
    callbacks().SendLocalReply({.status = 404,
                                .code = "model_not_found",
                                .message = fmt::format("the model `{}` does not exist", *id_),
                                .param = "model"});
  } else {
    callbacks().SendListing(catalog_.Json(*id_));
  }
  return FilterStatus::kStopIteration;
}

}  // namespace ll::gateway
