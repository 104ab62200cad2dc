#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/sweep_commands.hpp"
#include "experiments/sweep/sweep_status.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {
void print_status_table(const nlohmann::json& j, std::ostream& out);
}  // namespace

int status_command(const std::string& dir, std::ostream& out) {
  nlohmann::json status;
  try {
    status = read_sweep_status(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: %s\n", e.what());
    return kExitFailed;
  }
  try {
    print_status_table(status, out);
  } catch (const std::exception& e) {
    // JSON of another shape (a field missing or of another type): a clear error.
    std::fprintf(stderr, "expt: cannot read %s: %s\n", (fs::path(dir) / "status.json").string().c_str(), e.what());
    return kExitFailed;
  }
  return kExitOk;
}

namespace {

void print_status_table(const nlohmann::json& j, std::ostream& out) {
  out << fmt::format("sweep {} ({}), {:.0f} s:", j.value("study", ""), j.value("strategy", ""),
                     j.value("elapsed_s", 0.0));
  for (const auto& [state, n] : j.at("counts").items()) out << fmt::format(" {} {}", n.get<int>(), state);
  out << "\n";
  out << fmt::format("{:<16}  {:<22} {:>4}  {:<9} {:>13} {:>9} {:>10} {:>3}  {}\n", "trial", "cell", "seed", "state",
                     "step", "loss", "tok/s", "att", "point");
  const auto num = [](const nlohmann::json& v, const char* fmtstr) {
    return v.is_null() ? std::string("-") : fmt::format(fmt::runtime(fmtstr), v.get<double>());
  };
  for (const auto& t : j.at("trials")) {
    const std::string step = fmt::format(
        "{}/{}", t.at("step").is_null() ? std::string("-") : std::to_string(t.at("step").get<std::int64_t>()),
        t.at("steps").get<std::int64_t>());
    out << fmt::format("{:<16}  {:<22} {:>4}  {:<9} {:>13} {:>9} {:>10} {:>3}  {}\n", t.at("id").get<std::string>(),
                       t.at("cell").get<std::string>(), t.at("seed").get<std::uint64_t>(),
                       t.at("state").get<std::string>(), step, num(t.at("loss"), "{:.4f}"),
                       num(t.at("tokens_per_s"), "{:.0f}"), t.at("attempts").get<int>(),
                       t.at("point").get<std::string>());
  }
  for (const auto& c : j.at("coordinate_descent")) {
    out << fmt::format("cd {}: round {} centre {} {}\n", c.at("cell").get<std::string>(), c.at("round").get<int>(),
                       c.at("centre").get<std::string>(), c.at("converged").get<bool>() ? "converged" : "running");
    for (const auto& a : c.at("edge_alarms")) out << "  ALARM " << a.get<std::string>() << "\n";
  }
}

}  // namespace

}  // namespace expt::experiments
