#include "optimizers/optimizer.hpp"

namespace expt::optim {

std::vector<ParamRef> param_refs(nn::ParameterStore<float>& store) {
  std::vector<ParamRef> refs;
  refs.reserve(store.params().size());
  for (std::size_t i = 0; i < store.params().size(); ++i)
    refs.push_back(ParamRef{&store.params()[i], store.value(i), store.grad(i)});
  return refs;
}

}  // namespace expt::optim
