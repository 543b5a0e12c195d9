// Where `landlord` finds its shared data (the default traces, docs/…): the defaults name them
// relative to the repository ("data/helios_earth_2020_05"), so that a run from a clone reads the
// clone's data/. From any other directory a "data/…" path that is not there resolves against
// the install prefix (`<prefix>/share/landlord/…`, found from the running binary) or, for a
// binary that runs in its build tree, the source tree's data/.
#pragma once

#include <string>

namespace ll::sim {

// `path` itself when it exists, is absolute, or does not start with "data/"; else the first of
// the shared-data candidates that exists; else `path` (so that errors name what was asked for).
std::string DataPath(const std::string& path);

// The directory that holds the installed (or, in a build tree, the source) data files, without
// the trailing "/"; "" when neither is there. For `--help` and errors.
std::string SharedDataDir();

}  // namespace ll::sim
