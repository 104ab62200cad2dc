// The optimizer registry: make_optimizer (declared in optimizer.hpp, defined in registry.cpp)
// builds the optimizer of a type of config::optimizer_types() (core/config/type_descriptors.hpp,
// where a type is declared), switching over its kind.
#pragma once

#include <string>
#include <vector>

namespace expt::optim {

// The names make_optimizer accepts: config::optimizer_types()' names, in their order.
std::vector<std::string> known_optimizer_types();

}  // namespace expt::optim
