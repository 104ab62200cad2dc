// Helpers for the nn tests: random parameter values and a gradient check of every parameter of a
// store (and optionally an input) against central differences.
#pragma once

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/nn/parameter_store.hpp"
#include "tests/kernels/gradient_check.hpp"

namespace expt::test {

// Weights N(0, weight_scale^2); norm gains (role vector) 1 + N(0, 0.3^2), so that no gain is
// trivially 1 in a gradient check.
inline void randomize(nn::ParameterStore<double>& store, std::uint64_t seed, double weight_scale = 0.5) {
  for (std::size_t id = 0; id < store.params().size(); ++id) {
    const nn::ParamInfo& info = store.params()[id];
    const bool gain = info.role == nn::ParamRole::vector;
    const auto v = random_normal(info.size, seed + 1000 * id, gain ? 0.3 : weight_scale);
    double* w = store.value(id);
    for (std::size_t e = 0; e < info.size; ++e) w[e] = (gain ? 1.0 : 0.0) + v[e];
  }
}

// loss(): forward at the current values, returns the scalar loss.
// backward(): forward + backward; adds parameter gradients into the (zeroed) store and, when
// `input` is given, returns dloss/dinput.
// Requires the relative error of every parameter's (and the input's) gradient to be < tol, the
// numeric gradient taken with central differences of step `step`.
inline void check_gradients(nn::ParameterStore<double>& store, const std::function<double()>& loss,
                            const std::function<std::vector<double>()>& backward, std::vector<double>* input,
                            double tol = 1e-6, double step = 1e-5) {
  store.zero_grad();
  const std::vector<double> dinput = backward();
  for (std::size_t id = 0; id < store.params().size(); ++id) {
    const nn::ParamInfo& info = store.params()[id];
    const std::vector<double> numeric = central_difference(store.value(id), info.size, loss, step);
    const double err = relative_error(numeric.data(), store.grad(id), info.size);
    INFO("parameter " << info.name << " relative error " << err);
    REQUIRE(err < tol);
  }
  if (input) {
    const std::vector<double> numeric = central_difference(input->data(), input->size(), loss, step);
    const double err = relative_error(numeric, dinput);
    INFO("input relative error " << err);
    REQUIRE(err < tol);
  }
}

}  // namespace expt::test
