// What this binary is: its version (CMake's project version) and the git commit it was built
// from ("unknown" outside a git checkout; "-dirty" when the tree had uncommitted changes).
// Defined in a generated build_info.cc (cmake/build_info.cmake), rewritten only when the commit
// changes, so that a commit recompiles one small file and relinks, never the whole tree.
#pragma once

#include <string_view>

namespace ll {

std::string_view BuildVersion();  // "0.1.0"
std::string_view BuildCommit();   // "3f2a1c9d0e4b" or "3f2a1c9d0e4b-dirty" or "unknown"

}  // namespace ll
