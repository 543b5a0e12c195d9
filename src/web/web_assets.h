// The owner's dashboard (web/), built by scripts/web.sh (TypeScript, esbuild, uPlot) and
// embedded in the binary at build time (cmake/embed_web.cmake): `landlord serve` serves it and
// `landlord sim --html` inlines it. Nothing is read from disk or fetched at run time.
#pragma once

#include <string_view>

namespace ll::web {

struct Asset {
  std::string_view name;          // "index.html", "app.js", "app.css"
  std::string_view content_type;
  std::string_view body;
};

// The asset called `name`, or nullptr.
const Asset* FindAsset(std::string_view name);

}  // namespace ll::web
