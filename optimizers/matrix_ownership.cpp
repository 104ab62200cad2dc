#include "optimizers/matrix_ownership.hpp"

#include <algorithm>
#include <numeric>

#include "core/comm/communicator.hpp"

namespace expt::optim {

std::vector<int> balance_owners(std::span<const double> cost, int ranks) {
  std::vector<std::size_t> order(cost.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
  std::vector<double> load(static_cast<std::size_t>(ranks), 0.0);
  std::vector<int> owner(cost.size(), 0);
  for (std::size_t k : order) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    owner[k] = static_cast<int>(least);
    load[static_cast<std::size_t>(least)] += cost[k];
  }
  return owner;
}

void MatrixOwnership::assign(comm::Communicator* comm, bool enabled, std::span<const double> cost) {
  comm_ = nullptr;
  rank_ = 0;
  owner_.clear();
  if (comm == nullptr || comm->size() < 2 || !enabled) return;
  comm_ = comm;
  rank_ = comm->rank();
  owner_ = balance_owners(cost, comm->size());
}

bool MatrixOwnership::owns(std::size_t k) const { return comm_ == nullptr || owner_[k] == rank_; }

void MatrixOwnership::share(std::size_t k, std::span<float> data) const {
  if (comm_ != nullptr) comm_->broadcast(data, owner_[k]);
}
void MatrixOwnership::share(std::size_t k, std::span<double> data) const {
  if (comm_ != nullptr) comm_->broadcast(data, owner_[k]);
}
void MatrixOwnership::share(std::size_t k, std::span<std::int64_t> data) const {
  if (comm_ != nullptr) comm_->broadcast(data, owner_[k]);
}

}  // namespace expt::optim
