#include <nlohmann/json.hpp>
#include <ostream>
#include <utility>

#include "core/config/trial_schema.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/trial_commands.hpp"

namespace expt::experiments {

int types_command(std::ostream& out) {
  nlohmann::ordered_json json;
  for (const auto& [section, types] :
       {std::pair{"mixers", config::mixer_type_keys()}, std::pair{"optimizers", config::optimizer_type_keys()}}) {
    nlohmann::ordered_json& entry = json[section];
    entry = nlohmann::ordered_json::object();
    for (const config::TypeKeys& type : types) {
      nlohmann::ordered_json keys = nlohmann::ordered_json::object();
      for (const auto& [key, value] : type.keys) keys[key] = value;
      entry[type.name] = keys;
    }
  }
  out << json.dump(2) << "\n";
  return kExitOk;
}

}  // namespace expt::experiments
