// Typed ids. External ids are opaque strings with a type prefix (`lease_…`, `ten_…`);
// inside the allocator dense integer ids keep hot paths cheap. Distinct types make mixing
// a node id with a holder id a compile error.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>

namespace ll {

template <typename Tag>
struct DenseId {
  uint32_t v = UINT32_MAX;
  constexpr bool valid() const { return v != UINT32_MAX; }
  constexpr auto operator<=>(const DenseId&) const = default;
};

struct NodeTag {};
struct PoolTag {};
struct HolderTag {};
struct RackTag {};
using NodeId = DenseId<NodeTag>;
using PoolId = DenseId<PoolTag>;
using HolderId = DenseId<HolderTag>;
using RackId = DenseId<RackTag>;

// Formats an external id: prefix + "_" + zero-padded sequence, e.g. "lease_000042".
std::string MakeExternalId(std::string_view prefix, uint64_t seq);

}  // namespace ll

template <typename Tag>
struct std::hash<ll::DenseId<Tag>> {
  size_t operator()(ll::DenseId<Tag> id) const noexcept { return std::hash<uint32_t>()(id.v); }
};
