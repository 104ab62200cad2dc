// The optimizer registry: optimizer.type -> factory. make_optimizer (declared in optimizer.hpp) is
// defined in registry.cpp; a new optimizer is one line in its table.
#pragma once

#include <string>
#include <vector>

namespace expt::optim {

// The names make_optimizer accepts, in table order (for config validation and error messages).
std::vector<std::string> known_optimizer_types();

}  // namespace expt::optim
