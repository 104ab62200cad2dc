// Optimizer: one `step` over the model's parameters, state that serializes, parameter groups
// chosen by rules (role and name pattern), in the spirit of torch.optim.
//
// Conventions (docs/optimizers.md): gradients are already averaged over the global batch and
// clipped; `lr` is the scheduled learning rate of this step; 2-D weights are out x in, row-major.
//
// Resumable state is declared once, as torch.optim's state_dict: each optimizer registers its named
// arrays and scalars in its constructor (add_array, add_scalar, add_state), and the base class
// saves and loads them all, checking every entry's presence, element type and shape before it
// changes anything. The keys and layouts are the checkpoint format (docs/optimizers.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/util/state_dict.hpp"

namespace expt::comm {
class Communicator;
}

namespace expt::optim {

class MatrixOwnership;

// A view of one parameter tensor and its gradient.
struct ParamRef {
  const nn::ParamInfo* info;  // name, shape, role
  float* value;
  const float* grad;
  std::size_t size() const { return info->size; }
};

// Per-parameter settings resolved from the group rules.
struct ParamGroup {
  std::string name;       // e.g. "decay", "no_decay"
  double lr_scale = 1.0;  // multiplies the scheduled lr
  double weight_decay = 0.0;
  std::vector<std::size_t> params;  // indices into the ParamRef list
};

// How one state entry of element type T is saved and loaded.
template <class T>
struct StateIo {
  using value_type = T;
  // Writes the whole entry (its element count) into `out`. A collective when the entry is
  // sharded: every rank calls it, in registration order.
  std::function<void(std::span<T> out)> save;
  // Takes the whole entry (already checked) and keeps this rank's part of it.
  std::function<void(std::span<const T> in)> load;
  // Why these values cannot be loaded (e.g. an index out of range); nullopt when they can.
  std::function<std::optional<std::string>(std::span<const T> in)> check = nullptr;
};

class Optimizer {
 public:
  Optimizer() = default;
  // Registered entries point into the optimizer: it stays where it was built.
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  virtual ~Optimizer() = default;

  virtual std::string name() const = 0;
  // Applies one update. `step` counts from 1 (the first update); lr is after the schedule.
  virtual void step(std::span<const ParamRef> params, std::int64_t step, double lr) = 0;
  // Resumable state: every registered entry under its key. A collective when the optimizer is
  // sharded (each sharded entry is gathered from its owner), so every rank of the trial calls it.
  StateDict state() const;
  // Checks that `state` holds exactly the registered entries, each with its element type, shape and
  // valid values, then loads them all; throws std::runtime_error naming the first offending key
  // otherwise, leaving the optimizer unchanged.
  void load_state(const StateDict& state);
  // The data-parallel ranks of the trial, for optimizers that split their work over them
  // (docs/optimizers.md "Distributed"); the others ignore it. Every rank must call step() with the
  // same (reduced) gradients. nullptr or a group of one: no splitting.
  virtual void set_communicator(comm::Communicator* comm) { (void)comm; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Bytes of every registered state entry (its element count x element size), as one unsharded
  // rank holds them: what OptimizerMemory::state must equal (tests/optimizers/optimizer_memory_test).
  double registered_state_bytes() const;

 protected:
  // An entry with its own save and load. shape: as saved (empty: `count` elements without a shape,
  // as a scalar is saved).
  template <class T>
  void add_state(std::string key, std::vector<std::int64_t> shape, std::size_t count, StateIo<T> io) {
    entries_.push_back(Entry{std::move(key), std::move(shape), count, std::move(io)});
  }
  // An array held in `data()` (looked up at every save and load, so the storage may be replaced,
  // e.g. by set_communicator). With an `owner`, matrix `slot` of it is sharded: state() takes the
  // owner's values, and a rank loads the entry where it holds storage for it (a non-owner may hold
  // none). The element count is the shape's product, or data().size() at registration for an
  // unshaped entry. `check` as in StateIo; `finish_save` completes the saved entry once gathered
  // (e.g. a symmetric matrix kept as its upper triangle).
  template <class T>
  void add_array(std::string key, std::vector<std::int64_t> shape, std::function<std::span<T>()> data,
                 const MatrixOwnership* owner = nullptr, std::size_t slot = 0,
                 std::function<std::optional<std::string>(std::span<const T>)> check = nullptr,
                 std::function<void(std::span<T>)> finish_save = nullptr);
  // A counter saved as an int64 scalar.
  void add_scalar(std::string key, std::int64_t& value,
                  std::function<std::optional<std::string>(std::span<const std::int64_t>)> check = nullptr);
  // Every entry of `part` (an optimizer this one runs on some of its parameters) under
  // `prefix` + "/" + its key; its after_load() runs before this one's.
  void add_part_state(const std::string& prefix, Optimizer& part);
  // Recomputes what derives from loaded state (float copies, previous selections).
  virtual void after_load() {}

  std::vector<ParamGroup> groups_;

 private:
  struct Entry {
    std::string key;
    std::vector<std::int64_t> shape;
    std::size_t count = 0;
    std::variant<StateIo<float>, StateIo<double>, StateIo<std::int64_t>> io;
  };
  std::vector<Entry> entries_;
  std::vector<Optimizer*> parts_;
};

// Builds the optimizer named by cfg.type for the given parameters (registry in registry.cpp). A
// std::bad_alloc while it allocates its state becomes util::AllocationFailure naming the optimizer
// and optimizer_memory()'s bytes.
std::unique_ptr<Optimizer> make_optimizer(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

// The bytes an optimizer keeps for these parameters on one rank without sharding (sharding only
// lowers them), computed from the shapes alone, without building it: `state` is its resumable
// state, exactly registered_state_bytes() of the built optimizer (a test holds every type to it),
// `scratch` the buffers its step reuses (Newton-Schulz and DCT workspaces, SOAP's float bases and
// QR workspaces, M-FAC's flat copies). Each optimizer class defines its own static memory(cfg,
// params) next to its constructor; this dispatches on cfg.type like make_optimizer.
struct OptimizerMemory {
  double state = 0;
  double scratch = 0;
  double total() const { return state + scratch; }
};
OptimizerMemory optimizer_memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

// Checks that `params` lists the parameters `expected` (same count, names and sizes) and throws
// std::invalid_argument naming the first mismatch otherwise.
void check_param_refs(const std::string& optimizer, std::span<const ParamRef> params,
                      const std::vector<nn::ParamInfo>& expected);

// Collects ParamRefs for every parameter of a store, in store order.
std::vector<ParamRef> param_refs(nn::ParameterStore<float>& store);

}  // namespace expt::optim
