// The dashboard's HTTP routes as plain functions of a decoded request, without sockets
// (dashboard_server.cpp wires them to cpp-httplib). Everything is read-only GET (docs/dashboard.md):
//   /                       the page (and /app.js, /style.css, /chart.min.js), compiled in
//   /api/dirs               the served directories: [{dir, path, kind}]
//   /api/overview?dir=N     trial table, counts by state, cells with their coordinate-descent round
//   /api/trial?dir=N&id=ID  resolved config, attempts, events, summary, log tail of one trial
//   /api/metrics?dir=N&id=ID[&points=M]  train and eval series as columns (at most M rows each)
//   /api/analysis?dir=N     `expt analyze DIR --format json`, and each cell's best trials
//   /files/N/<path>         a file under directory N (log.txt, analysis/plots/*.png, ...)
// Errors are JSON {"error": "..."} with 400 (bad parameter), 404 (nothing there), 405 (not GET),
// 503 (the sweep cannot be analysed yet).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "experiments/serve/served_directory.hpp"

namespace expt::serve {

struct ApiRequest {
  std::string method;  // "GET", "HEAD", ...
  std::string path;    // percent-decoded, without the query
  std::map<std::string, std::string> params;
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

class DashboardApi {
 public:
  // One ServedDirectory per directory named on the command line, in order (N = position).
  explicit DashboardApi(std::vector<std::unique_ptr<ServedDirectory>> dirs);
  ApiResponse handle(const ApiRequest& request);
  const std::vector<std::unique_ptr<ServedDirectory>>& dirs() const { return dirs_; }

 private:
  ServedDirectory* find_dir(const ApiRequest& request, ApiResponse& error);
  std::vector<std::unique_ptr<ServedDirectory>> dirs_;
};

// Content type of a file served from /files/ by its extension (text types as UTF-8).
std::string content_type_for(const std::string& filename);

}  // namespace expt::serve
