// The dashboard's static files, compiled into the binary (cmake/embed_web_assets.cmake): the page,
// its script and style from experiments/serve/web/, and Debian's Chart.js (libjs-chart.js), so
// `expt serve` works offline and on a machine without the package (docs/decisions.md).
#pragma once

#include <span>
#include <string_view>

namespace expt::serve {

struct WebAsset {
  std::string_view url_path;      // "/", "/app.js", "/chart.min.js", ...
  std::string_view content_type;  // "text/javascript; charset=utf-8", ...
  std::string_view body;
};

std::span<const WebAsset> web_assets();

}  // namespace expt::serve
