#include "experiments/sweep/sweep_status.hpp"

#include <fstream>
#include <stdexcept>

namespace expt::experiments {

nlohmann::json read_sweep_status(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "status.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + " not found (is " + dir.string() + " a sweep directory?)");
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (!j.is_object() || !j.contains("counts") || !j.contains("trials") || !j.at("trials").is_array())
      throw std::runtime_error("not a status file (no counts or trials)");
    return j;
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read " + path.string() + ": " + e.what());
  }
}

}  // namespace expt::experiments
