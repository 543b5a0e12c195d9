#include "store/store.h"

#include <fmt/format.h>

namespace ll::store {

Status ReadLeaseNames(LeaseRecord& l, std::string_view kind, std::string_view state, std::string_view end_reason,
                      std::string_view notice_tier) {
  auto k = ParseLeaseKind(kind);
  auto s = ParseLeaseState(state);
  auto e = ParseLeaseEnd(end_reason);
  auto t = ParseNoticeTier(notice_tier);
  for (const auto& [st, column] : {std::pair{k.status(), "kind"}, {s.status(), "state"}, {e.status(), "end_reason"},
                                   {t.status(), "notice_tier"}}) {
    if (!st.ok()) return Status::Invalid(fmt::format("lease `{}`: column `{}`: {}", l.id, column, st.message()));
  }
  l.kind = *k;
  l.state = *s;
  l.end_reason = *e;
  l.notice_tier = *t;
  return Status::Ok();
}

}  // namespace ll::store
