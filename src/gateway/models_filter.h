// `GET /v1/models` and `GET /v1/models/{id}`, answered by the gateway from the models its router
// serves (after auth: the catalog is the tenants' only). 404 model_not_found for an id no
// replica serves.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "gateway/filter.h"
#include "gateway/router.h"

namespace ll::gateway {

// When each model was first registered: the model object's `created` (unix seconds).
class ModelCatalog {
 public:
  // `started_s`: the `created` of a model registered before anything was (never, in practice).
  explicit ModelCatalog(int64_t started_s) : started_s_(started_s) {}
  // A model seen first is registered at `now_s`; later calls keep the first time.
  void Register(const std::string& model, int64_t now_s) { created_.emplace(model, now_s); }
  // The model object of `GET /v1/models` and `/v1/models/{id}`.
  std::string Json(const std::string& model) const;

 private:
  int64_t started_s_;
  std::map<std::string, int64_t> created_;
};

class ModelsFilter final : public StreamFilter {
 public:
  // `id`: the model of `/v1/models/{id}` (decoded), or nullopt for the list. `router` and
  // `catalog` outlive the filter.
  ModelsFilter(const Router& router, const ModelCatalog& catalog, std::optional<std::string> id)
      : router_(router), catalog_(catalog), id_(std::move(id)) {}
  // Answers: always stops.
  FilterStatus DecodeHeaders(RequestState& r) override;

 private:
  const Router& router_;
  const ModelCatalog& catalog_;
  std::optional<std::string> id_;
};

}  // namespace ll::gateway
