#include "core/data/task.hpp"

#include <stdexcept>
#include <string_view>
#include <utility>

#include "core/data/answer_position.hpp"
#include "core/data/language_model.hpp"
#include "core/data/mqar.hpp"
#include "core/data/word_problem.hpp"

namespace expt::data {

namespace {

using Factory = std::unique_ptr<Task> (*)(const config::TaskConfig&);

template <class TaskType>
std::unique_ptr<Task> construct(const config::TaskConfig& cfg) {
  return std::make_unique<TaskType>(cfg);
}

// One row per task: the config name and its factory.
constexpr std::pair<std::string_view, Factory> kTasks[] = {
    {"word_problem", &construct<WordProblemTask>}, {"mqar", &construct<MqarTask>},
    {"parity", &construct<AnswerPositionTask>},    {"mod_arith", &construct<AnswerPositionTask>},
    {"text", &construct<LanguageModelTask>},       {"tokens", &construct<LanguageModelTask>},
};

}  // namespace

std::unique_ptr<Task> make_task(const config::TaskConfig& cfg) {
  for (const auto& [name, factory] : kTasks)
    if (cfg.type == name) return factory(cfg);
  std::string known;
  for (const auto& [name, factory] : kTasks) known += (known.empty() ? "" : ", ") + std::string(name);
  throw std::invalid_argument("unknown task type '" + cfg.type + "' (known: " + known + ")");
}

}  // namespace expt::data
