#include "experiments/serve/dashboard_api.hpp"

#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "experiments/serve/web_assets.hpp"

namespace expt::serve {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

ApiResponse error_response(int status, const std::string& message) {
  return ApiResponse{status, "application/json", json{{"error", message}}.dump()};
}

ApiResponse json_response(const json& j) { return ApiResponse{200, "application/json", j.dump()}; }

// A decimal index or count without sign, spaces or leading zeros; nullopt otherwise.
std::optional<std::size_t> parse_index(const std::string& text) {
  if (text.empty() || text.size() > 9 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Files larger than this are not sent whole (logs and plots are far smaller; a result.h5 is read
// through the API instead).
constexpr std::uintmax_t kMaxFileBytes = 64u << 20;

}  // namespace

std::string content_type_for(const std::string& filename) {
  const std::string ext = fs::path(filename).extension().string();
  if (ext == ".txt" || ext == ".log" || ext == ".yaml" || ext == ".md" || ext == ".csv")
    return "text/plain; charset=utf-8";
  if (ext == ".json" || ext == ".jsonl") return "application/json";
  if (ext == ".png") return "image/png";
  if (ext == ".svg") return "image/svg+xml";
  return "application/octet-stream";
}

DashboardApi::DashboardApi(std::vector<std::unique_ptr<ServedDirectory>> dirs) : dirs_(std::move(dirs)) {}

ServedDirectory* DashboardApi::find_dir(const ApiRequest& request, ApiResponse& error) {
  const auto it = request.params.find("dir");
  const std::string text = it == request.params.end() ? "0" : it->second;
  const auto index = parse_index(text);
  if (!index || *index >= dirs_.size()) {
    error = error_response(400, "dir must be a directory number from 0 to " + std::to_string(dirs_.size() - 1));
    return nullptr;
  }
  return dirs_[*index].get();
}

ApiResponse DashboardApi::handle(const ApiRequest& request) {
  if (request.method != "GET" && request.method != "HEAD")
    return error_response(405, "expt serve is read-only: only GET and HEAD");
  const std::string& path = request.path;
  for (const WebAsset& asset : web_assets())
    if (path == asset.url_path || (asset.url_path == "/" && path == "/index.html"))
      return ApiResponse{200, std::string(asset.content_type), std::string(asset.body)};

  try {
    if (path == "/api/dirs") {
      json out = json::array();
      for (std::size_t i = 0; i < dirs_.size(); ++i)
        out.push_back({{"dir", i},
                       {"path", dirs_[i]->path().string()},
                       {"kind", dirs_[i]->kind() == ServedDirectory::Kind::sweep ? "sweep" : "trial"}});
      return json_response(out);
    }
    if (path.rfind("/api/", 0) == 0) {
      ApiResponse error;
      ServedDirectory* dir = find_dir(request, error);
      if (dir == nullptr) return error;
      const auto id_it = request.params.find("id");
      const std::string id = id_it == request.params.end() ? "" : id_it->second;
      if (path == "/api/overview") return ApiResponse{200, "application/json", dir->overview_json()};
      if (path == "/api/trial") {
        if (auto t = dir->trial(id)) return json_response(*t);
        return error_response(404, "no trial '" + id + "' in " + dir->path().string());
      }
      if (path == "/api/metrics") {
        std::size_t points = 2000;
        if (const auto p = request.params.find("points"); p != request.params.end()) {
          const auto parsed = parse_index(p->second);
          if (!parsed || *parsed < 2 || *parsed > 1000000) return error_response(400, "points must be 2 to 1000000");
          points = *parsed;
        }
        if (auto m = dir->metrics_json(id, points)) return ApiResponse{200, "application/json", std::move(*m)};
        return error_response(404, "no trial '" + id + "' in " + dir->path().string());
      }
      if (path == "/api/analysis") {
        try {
          return ApiResponse{200, "application/json", dir->analysis_json()};
        } catch (const std::exception& e) {
          return error_response(503, std::string("no analysis yet: ") + e.what());
        }
      }
      return error_response(404, "no such API route: " + path);
    }
    if (path.rfind("/files/", 0) == 0) {
      const std::string rest = path.substr(7);
      const std::size_t slash = rest.find('/');
      const auto index = parse_index(rest.substr(0, slash));
      if (slash == std::string::npos || !index || *index >= dirs_.size())
        return error_response(404, "not found: " + path);
      const auto file = dirs_[*index]->resolve_file(rest.substr(slash + 1));
      if (!file) return error_response(404, "not found: " + path);
      std::error_code ec;
      const std::uintmax_t size = fs::file_size(*file, ec);
      if (ec || size > kMaxFileBytes) return error_response(404, "not served (too large or unreadable): " + path);
      std::ifstream in(*file, std::ios::binary);
      std::string body(static_cast<std::size_t>(size), '\0');
      in.read(body.data(), static_cast<std::streamsize>(size));
      body.resize(static_cast<std::size_t>(in.gcount()));
      return ApiResponse{200, content_type_for(file->filename().string()), std::move(body)};
    }
  } catch (const std::exception& e) {
    // A file that changed under us in a way the readers did not foresee: this request fails, the
    // server goes on.
    return error_response(500, e.what());
  }
  return error_response(404, "not found: " + path);
}

}  // namespace expt::serve
