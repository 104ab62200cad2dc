#include "core/util/state_dict.hpp"

#include <algorithm>
#include <utility>

namespace expt {

namespace {
template <class T>
StateDict::Array make_array(std::span<const T> v, std::vector<std::int64_t> shape) {
  return StateDict::Array{std::move(shape), std::vector<T>(v.begin(), v.end())};
}

template <class T>
const std::vector<T>& typed(const StateDict::Array& a, const std::string& key, const char* type) {
  if (auto p = std::get_if<std::vector<T>>(&a.data)) return *p;
  throw std::runtime_error("state entry '" + key + "' is not of type " + type);
}
}  // namespace

void StateDict::put(const std::string& key, std::span<const float> v, std::vector<std::int64_t> shape) {
  entries_[key] = make_array(v, std::move(shape));
}
void StateDict::put(const std::string& key, std::span<const double> v, std::vector<std::int64_t> shape) {
  entries_[key] = make_array(v, std::move(shape));
}
void StateDict::put(const std::string& key, std::span<const std::int64_t> v, std::vector<std::int64_t> shape) {
  entries_[key] = make_array(v, std::move(shape));
}
void StateDict::put(const std::string& key, std::vector<float>&& v, std::vector<std::int64_t> shape) {
  entries_[key] = Array{std::move(shape), std::move(v)};
}
void StateDict::put(const std::string& key, std::vector<double>&& v, std::vector<std::int64_t> shape) {
  entries_[key] = Array{std::move(shape), std::move(v)};
}
void StateDict::put(const std::string& key, std::vector<std::int64_t>&& v, std::vector<std::int64_t> shape) {
  entries_[key] = Array{std::move(shape), std::move(v)};
}
void StateDict::put_scalar(const std::string& key, double v) { put(key, std::span<const double>(&v, 1)); }
void StateDict::put_scalar(const std::string& key, std::int64_t v) { put(key, std::span<const std::int64_t>(&v, 1)); }
void StateDict::put_string(const std::string& key, std::string v) { entries_[key] = Array{{}, std::move(v)}; }

const StateDict::Array& StateDict::at(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) throw std::runtime_error("state entry '" + key + "' is missing");
  return it->second;
}

const std::vector<float>& StateDict::floats(const std::string& key) const {
  return typed<float>(at(key), key, "float32");
}
const std::vector<double>& StateDict::doubles(const std::string& key) const {
  return typed<double>(at(key), key, "float64");
}
const std::vector<std::int64_t>& StateDict::ints(const std::string& key) const {
  return typed<std::int64_t>(at(key), key, "int64");
}

void StateDict::get_into(const std::string& key, std::span<float> out) const {
  const auto& v = floats(key);
  if (v.size() != out.size())
    throw std::runtime_error("state entry '" + key + "' has " + std::to_string(v.size()) + " elements, expected " +
                             std::to_string(out.size()));
  std::copy(v.begin(), v.end(), out.begin());
}
void StateDict::get_into(const std::string& key, std::span<double> out) const {
  const auto& v = doubles(key);
  if (v.size() != out.size())
    throw std::runtime_error("state entry '" + key + "' has " + std::to_string(v.size()) + " elements, expected " +
                             std::to_string(out.size()));
  std::copy(v.begin(), v.end(), out.begin());
}

double StateDict::scalar_double(const std::string& key) const {
  const auto& v = doubles(key);
  if (v.size() != 1) throw std::runtime_error("state entry '" + key + "' is not a scalar");
  return v[0];
}
std::int64_t StateDict::scalar_int(const std::string& key) const {
  const auto& v = ints(key);
  if (v.size() != 1) throw std::runtime_error("state entry '" + key + "' is not a scalar");
  return v[0];
}
const std::string& StateDict::string(const std::string& key) const {
  if (auto p = std::get_if<std::string>(&at(key).data)) return *p;
  throw std::runtime_error("state entry '" + key + "' is not a string");
}

void StateDict::merge(const std::string& prefix, StateDict&& other) {
  for (auto& [k, v] : other.entries_) entries_[prefix + "/" + k] = std::move(v);
  other.entries_.clear();
}

StateDict StateDict::take(const std::string& prefix) {
  StateDict out;
  const std::string p = prefix + "/";
  for (auto it = entries_.lower_bound(p); it != entries_.end() && it->first.compare(0, p.size(), p) == 0;) {
    out.entries_[it->first.substr(p.size())] = std::move(it->second);
    it = entries_.erase(it);
  }
  return out;
}

}  // namespace expt
