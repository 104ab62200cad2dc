// StateDict: a named bag of arrays and scalars that checkpoints are made of. Optimizers, tasks and
// the trainer write their resumable state into one; core/io/checkpoint turns it into files and back.
// Keeping it free of HDF5 lets every component be saved and restored without knowing the format.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace expt {

class StateDict {
 public:
  // One entry: a shaped array of float, double or int64, or a string.
  struct Array {
    std::vector<std::int64_t> shape;  // empty: a scalar (one element)
    std::variant<std::vector<float>, std::vector<double>, std::vector<std::int64_t>, std::string> data;
  };

  void put(const std::string& key, std::span<const float> v, std::vector<std::int64_t> shape = {});
  void put(const std::string& key, std::span<const double> v, std::vector<std::int64_t> shape = {});
  void put(const std::string& key, std::span<const std::int64_t> v, std::vector<std::int64_t> shape = {});
  // The same, taking the vector over instead of copying it.
  void put(const std::string& key, std::vector<float>&& v, std::vector<std::int64_t> shape = {});
  void put(const std::string& key, std::vector<double>&& v, std::vector<std::int64_t> shape = {});
  void put(const std::string& key, std::vector<std::int64_t>&& v, std::vector<std::int64_t> shape = {});
  void put_scalar(const std::string& key, double v);
  void put_scalar(const std::string& key, std::int64_t v);
  void put_string(const std::string& key, std::string v);

  bool contains(const std::string& key) const { return entries_.count(key) != 0; }
  // Getters throw std::runtime_error naming the key when it is missing or of another type/size.
  const std::vector<float>& floats(const std::string& key) const;
  const std::vector<double>& doubles(const std::string& key) const;
  const std::vector<std::int64_t>& ints(const std::string& key) const;
  void get_into(const std::string& key, std::span<float> out) const;   // size must match
  void get_into(const std::string& key, std::span<double> out) const;  // size must match
  double scalar_double(const std::string& key) const;
  std::int64_t scalar_int(const std::string& key) const;
  const std::string& string(const std::string& key) const;

  const std::map<std::string, Array>& entries() const { return entries_; }
  std::map<std::string, Array>& entries() { return entries_; }

  // Moves every entry of `other` here under `prefix` + "/" + key. Moved, not copied: an
  // optimizer's state can be tens of MB (M-FAC's gradient window), and a copy into fresh pages
  // cost as much as writing the checkpoint.
  void merge(const std::string& prefix, StateDict&& other);
  // Moves the entries under `prefix` + "/" out of this dict, with the prefix removed.
  StateDict take(const std::string& prefix);

 private:
  const Array& at(const std::string& key) const;
  std::map<std::string, Array> entries_;
};

}  // namespace expt
