#include "sim/data_files.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

// LL_DATA_FROM_BINDIR: the install's data dir relative to its bin dir ("../share/landlord");
// LL_BUILD_DIR, LL_SOURCE_DATA_DIR: the build tree and the source tree's data/ (build-tree runs).
#ifndef LL_DATA_FROM_BINDIR
#error "LL_DATA_FROM_BINDIR must be defined (src/sim/CMakeLists.txt)"
#endif

namespace ll::sim {
namespace {

namespace fs = std::filesystem;

bool Exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// The running binary's directory, from /proc (Linux); "" when it cannot be read.
fs::path BinaryDir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

// True when `dir` is `root` or below it (both absolute, lexically normalized).
bool Within(const fs::path& dir, const fs::path& root) {
  auto [r, d] = std::mismatch(root.begin(), root.end(), dir.begin(), dir.end());
  return r == root.end();
}

std::string FindSharedDataDir() {
  const fs::path bin = BinaryDir();
  if (bin.empty()) return "";
  const fs::path installed = (bin / LL_DATA_FROM_BINDIR).lexically_normal();
  if (Exists(installed)) return installed.string();
  // Only a binary inside its own build tree falls back to the sources: an installed binary must
  // not quietly depend on the machine it was built on.
  const fs::path source = fs::path(LL_SOURCE_DATA_DIR);
  if (Within(bin.lexically_normal(), fs::path(LL_BUILD_DIR).lexically_normal()) && Exists(source)) {
    return source.string();
  }
  return "";
}

}  // namespace

std::string SharedDataDir() {
  static const std::string dir = FindSharedDataDir();  // the binary does not move while it runs
  return dir;
}

std::string DataPath(const std::string& path) {
  std::string_view rel = path;
  while (rel.substr(0, 2) == "./") rel.remove_prefix(2);
  if (rel.substr(0, 5) != "data/" || Exists(path)) return path;
  const std::string root = SharedDataDir();
  if (root.empty()) return path;
  std::string candidate = root + "/" + std::string(rel.substr(5));
  return Exists(candidate) ? candidate : path;
}

}  // namespace ll::sim
