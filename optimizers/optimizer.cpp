#include "optimizers/optimizer.hpp"

#include <algorithm>
#include <stdexcept>
#include <unordered_set>
#include <utility>

#include "optimizers/matrix_ownership.hpp"

namespace expt::optim {

namespace {

template <class T>
constexpr const char* element_type() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  if constexpr (std::is_same_v<T, double>) return "float64";
  return "int64";
}

std::string show_shape(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

}  // namespace

StateDict Optimizer::state() const {
  StateDict sd;
  for (const Entry& e : entries_)
    std::visit(
        [&](const auto& io) {
          using T = typename std::decay_t<decltype(io)>::value_type;
          std::vector<T> values(e.count);
          io.save(std::span<T>(values));
          sd.put(e.key, std::move(values), e.shape);
        },
        e.io);
  return sd;
}

void Optimizer::load_state(const StateDict& state) {
  const std::string who = name() + " state: ";
  // Check everything first, so that a bad state leaves the optimizer untouched.
  std::unordered_set<std::string> known;
  for (const Entry& e : entries_) {
    known.insert(e.key);
    const auto it = state.entries().find(e.key);
    if (it == state.entries().end()) throw std::runtime_error(who + "missing entry '" + e.key + "'");
    const StateDict::Array& array = it->second;
    std::visit(
        [&](const auto& io) {
          using T = typename std::decay_t<decltype(io)>::value_type;
          const auto* values = std::get_if<std::vector<T>>(&array.data);
          if (values == nullptr)
            throw std::runtime_error(who + "entry '" + e.key + "' is not of type " + element_type<T>());
          if (values->size() != e.count || array.shape != e.shape)
            throw std::runtime_error(who + "entry '" + e.key + "' has " + std::to_string(values->size()) +
                                     " elements of shape " + show_shape(array.shape) + ", expected " +
                                     std::to_string(e.count) + " of shape " + show_shape(e.shape));
          if (io.check)
            if (const auto problem = io.check(std::span<const T>(*values)))
              throw std::runtime_error(who + "entry '" + e.key + "': " + *problem);
        },
        e.io);
  }
  for (const auto& [key, array] : state.entries())
    if (!known.count(key)) throw std::runtime_error(who + "entry '" + key + "' is not part of this optimizer's state");

  for (const Entry& e : entries_)
    std::visit(
        [&](const auto& io) {
          using T = typename std::decay_t<decltype(io)>::value_type;
          io.load(std::span<const T>(std::get<std::vector<T>>(state.entries().at(e.key).data)));
        },
        e.io);
  for (Optimizer* part : parts_) part->after_load();
  after_load();
}

template <class T>
void Optimizer::add_array(std::string key, std::vector<std::int64_t> shape, std::function<std::span<T>()> data,
                          const MatrixOwnership* owner, std::size_t slot,
                          std::function<std::optional<std::string>(std::span<const T>)> check,
                          std::function<void(std::span<T>)> finish_save) {
  std::size_t count = data().size();
  if (!shape.empty()) {
    count = 1;
    for (std::int64_t d : shape) count *= static_cast<std::size_t>(d);
  }
  StateIo<T> io;
  io.save = [data, owner, slot, finish_save](std::span<T> out) {
    const bool mine = owner == nullptr || owner->owns(slot);
    if (mine) std::copy_n(data().begin(), out.size(), out.begin());
    if (owner != nullptr) owner->share(slot, out);
    if (finish_save) finish_save(out);
  };
  io.load = [data](std::span<const T> in) {
    const std::span<T> local = data();
    if (local.size() == in.size()) std::copy(in.begin(), in.end(), local.begin());
  };
  io.check = std::move(check);
  add_state<T>(std::move(key), std::move(shape), count, std::move(io));
}

template void Optimizer::add_array<float>(std::string, std::vector<std::int64_t>, std::function<std::span<float>()>,
                                          const MatrixOwnership*, std::size_t,
                                          std::function<std::optional<std::string>(std::span<const float>)>,
                                          std::function<void(std::span<float>)>);
template void Optimizer::add_array<double>(std::string, std::vector<std::int64_t>, std::function<std::span<double>()>,
                                           const MatrixOwnership*, std::size_t,
                                           std::function<std::optional<std::string>(std::span<const double>)>,
                                           std::function<void(std::span<double>)>);
template void Optimizer::add_array<std::int64_t>(
    std::string, std::vector<std::int64_t>, std::function<std::span<std::int64_t>()>, const MatrixOwnership*,
    std::size_t, std::function<std::optional<std::string>(std::span<const std::int64_t>)>,
    std::function<void(std::span<std::int64_t>)>);

void Optimizer::add_scalar(std::string key, std::int64_t& value,
                           std::function<std::optional<std::string>(std::span<const std::int64_t>)> check) {
  add_state<std::int64_t>(std::move(key), {}, 1,
                          {[&value](std::span<std::int64_t> out) { out[0] = value; },
                           [&value](std::span<const std::int64_t> in) { value = in[0]; }, std::move(check)});
}

double Optimizer::registered_state_bytes() const {
  double bytes = 0;
  for (const Entry& e : entries_)
    std::visit(
        [&](const auto& io) {
          bytes += static_cast<double>(e.count) * sizeof(typename std::decay_t<decltype(io)>::value_type);
        },
        e.io);
  return bytes;
}

void Optimizer::add_part_state(const std::string& prefix, Optimizer& part) {
  for (const Entry& e : part.entries_) entries_.push_back(Entry{prefix + "/" + e.key, e.shape, e.count, e.io});
  parts_.push_back(&part);
}

void check_param_refs(const std::string& optimizer, std::span<const ParamRef> params,
                      const std::vector<nn::ParamInfo>& expected) {
  if (params.size() != expected.size())
    throw std::invalid_argument(optimizer + ": step got " + std::to_string(params.size()) + " parameters, built for " +
                                std::to_string(expected.size()));
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i].info->name != expected[i].name || params[i].size() != expected[i].size)
      throw std::invalid_argument(optimizer + ": parameter " + std::to_string(i) + " is '" + params[i].info->name +
                                  "' (" + std::to_string(params[i].size()) +
                                  " elements), the optimizer was built for '" + expected[i].name + "' (" +
                                  std::to_string(expected[i].size) + " elements)");
}

}  // namespace expt::optim
