#include "control/placement.h"

#include <algorithm>

#include <fmt/format.h>

namespace ll::control {

std::string FormatPlacement(std::vector<alloc::Share> shares) {
  std::sort(shares.begin(), shares.end(), [](auto& a, auto& b) { return a.node < b.node; });
  std::string out;
  for (const auto& s : shares) out += fmt::format("{}{}:{}", out.empty() ? "" : ",", s.node.v, s.gpus);
  return out;
}

Result<std::vector<alloc::Share>> ParsePlacement(std::string_view text) {
  std::vector<alloc::Share> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view part = text.substr(pos, comma - pos);
    size_t colon = part.find(':');
    if (colon == std::string_view::npos) return Status::Invalid(fmt::format("bad placement `{}`", text));
    try {
      out.push_back({NodeId{static_cast<uint32_t>(std::stoul(std::string(part.substr(0, colon))))},
                     static_cast<Gpus>(std::stoi(std::string(part.substr(colon + 1))))});
    } catch (...) {
      return Status::Invalid(fmt::format("bad placement `{}`", text));
    }
    pos = comma + 1;
  }
  return out;
}

}  // namespace ll::control
