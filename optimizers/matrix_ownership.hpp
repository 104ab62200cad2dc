// Whole-matrix ownership across the data-parallel ranks (docs/optimizers.md "Distributed", the KJ
// pattern with a greedy cost balance), shared by Muon, SOAP and DCT-AdamW when optimizer.shard is
// on. Every rank steps with the same reduced gradient; the owner of a matrix alone keeps its state
// and computes its update, then broadcasts the updated matrix, so every rank ends the step with the
// parameters of the unsharded run, bit for bit (the owner runs the unsharded code on the same input).
//
// Owners: matrices by cost, descending (stable, so equal costs keep their list order), each to the
// least-loaded rank so far (ties to the lower rank). Each optimizer supplies its own cost.
//
// Checkpoints: state() of a sharded optimizer is a collective — every rank calls it in the same
// order (the trainer does), each owned entry is broadcast from its owner, and the result is the
// full state of the unsharded optimizer. A checkpoint therefore does not depend on the rank count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace expt::comm {
class Communicator;
}

namespace expt::optim {

// Owner rank of each of cost.size() matrices on `ranks` ranks, by the greedy balance above.
std::vector<int> balance_owners(std::span<const double> cost, int ranks);

class MatrixOwnership {
 public:
  // Shards over `comm` when `enabled` and it has more than one rank; otherwise every rank owns every
  // matrix (nothing is communicated).
  void assign(comm::Communicator* comm, bool enabled, std::span<const double> cost);
  bool sharded() const { return comm_ != nullptr; }
  // True when this rank keeps the state of matrix k and computes its update.
  bool owns(std::size_t k) const;
  // Owner rank of each matrix; empty when not sharded.
  const std::vector<int>& owners() const { return owner_; }
  // Copies the owner's `data` of matrix k to every rank (a collective when sharded; no-op otherwise).
  void share(std::size_t k, std::span<float> data) const;
  void share(std::size_t k, std::span<double> data) const;
  void share(std::size_t k, std::span<std::int64_t> data) const;

 private:
  comm::Communicator* comm_ = nullptr;
  int rank_ = 0;
  std::vector<int> owner_;
};

}  // namespace expt::optim
