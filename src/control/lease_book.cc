#include "control/lease_book.h"

#include <algorithm>

#include <fmt/format.h>

namespace ll::control {

size_t LeaseBook::Add(Lease l) {
  const size_t i = leases_.size();
  index_[l.rec.id] = i;
  by_tenant_[l.rec.tenant_id].push_back(i);
  leases_.push_back(std::move(l));
  return i;
}

void LeaseBook::PopBack() {
  const Lease& l = leases_.back();
  index_.erase(l.rec.id);
  auto it = by_tenant_.find(l.rec.tenant_id);
  it->second.pop_back();
  if (it->second.empty()) by_tenant_.erase(it);
  live_.erase(leases_.size() - 1);
  leases_.pop_back();
}

std::optional<size_t> LeaseBook::IndexOf(const std::string& id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

Result<size_t> LeaseBook::Find(const Principal& who, const std::string& id, std::string_view param) const {
  std::optional<size_t> i = IndexOf(id);
  if (!i || (!who.admin && leases_[*i].rec.tenant_id != who.tenant_id)) {  // 404, never 403
    return Status(StatusCode::kNotFound, "lease_not_found", fmt::format("no lease `{}`", id), param);
  }
  return *i;
}

const std::vector<size_t>& LeaseBook::OfTenant(const std::string& tenant_id) const {
  static const std::vector<size_t> kNone;
  auto it = by_tenant_.find(tenant_id);
  return it != by_tenant_.end() ? it->second : kNone;
}

Result<LeaseBook::Page> LeaseBook::List(const Principal& who, int limit, const std::string& after) const {
  std::vector<size_t> all;
  const std::vector<size_t>* mine = &all;
  if (who.admin) {
    all.resize(leases_.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  } else {
    mine = &OfTenant(who.tenant_id);
  }
  size_t end = mine->size();  // newest first: walk back from here
  if (!after.empty()) {
    auto cursor = Find(who, after);
    if (!cursor.ok()) {
      return Status(StatusCode::kInvalidArgument, "invalid_value", fmt::format("`after`: no lease `{}`", after), "after");
    }
    end = std::lower_bound(mine->begin(), mine->end(), *cursor) - mine->begin();
  }
  Page page;
  size_t i = end;
  for (; i > 0 && page.leases.size() < static_cast<size_t>(limit); --i) page.leases.push_back((*mine)[i - 1]);
  page.has_more = i > 0;
  return page;
}

}  // namespace ll::control
