#include "sim/embedded_data.h"

// The Helios change-point file (4 MB; attribution in data/README.md), assembled in as it is on
// disk: `.incbin` costs no compile time, unlike a 4-million-element array literal.
asm(".section .rodata\n"
    ".balign 16\n"
    ".global ll_embedded_helios_begin\n"
    "ll_embedded_helios_begin:\n"
    ".incbin \"" LL_EMBEDDED_HELIOS "\"\n"
    ".global ll_embedded_helios_end\n"
    "ll_embedded_helios_end:\n"
    ".previous\n");

extern "C" const char ll_embedded_helios_begin[];
extern "C" const char ll_embedded_helios_end[];

namespace ll::sim {

std::optional<std::string_view> EmbeddedDataFile(std::string_view path) {
  while (path.substr(0, 2) == "./") path.remove_prefix(2);
  if (path == "data/helios_earth_2020_05/earth_vc_sequence_2020-05_changepoints.csv") {
    return std::string_view(ll_embedded_helios_begin,
                            static_cast<size_t>(ll_embedded_helios_end - ll_embedded_helios_begin));
  }
  return std::nullopt;
}

}  // namespace ll::sim
