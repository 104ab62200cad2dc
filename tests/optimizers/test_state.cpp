// The optimizer state declared once in the base class (optimizers/optimizer.hpp): for every type
// of config::optimizer_types(), the registry builds it, and load_state refuses a missing, extra,
// mis-typed or mis-shaped entry by name while leaving the optimizer as it was.
#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "core/config/type_descriptors.hpp"
#include "optimizers/optimizer.hpp"
#include "optimizers/registry.hpp"
#include "tests/optimizers/optimizer_test_util.hpp"

using expt::StateDict;

namespace {

// Entries of a and b equal byte for byte (same keys, shapes and types).
bool same_state(const StateDict& a, const StateDict& b) {
  if (a.entries().size() != b.entries().size()) return false;
  for (const auto& [key, x] : a.entries()) {
    const auto it = b.entries().find(key);
    if (it == b.entries().end() || it->second.shape != x.shape || it->second.data.index() != x.data.index())
      return false;
    const bool equal = std::visit(
        [&](const auto& values) {
          using V = std::decay_t<decltype(values)>;
          const V& other = std::get<V>(it->second.data);
          if constexpr (std::is_same_v<V, std::string>)
            return values == other;
          else
            return values.size() == other.size() &&
                   std::memcmp(values.data(), other.data(), values.size() * sizeof(values[0])) == 0;
        },
        x.data);
    if (!equal) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("the registry builds every optimizer type of the descriptors", "[optimizers][registry]") {
  expt::test::LeastSquares problem(3);
  REQUIRE(expt::optim::known_optimizer_types().size() == expt::config::optimizer_types().size());
  for (const auto& type : expt::config::optimizer_types()) {
    const auto opt = expt::optim::make_optimizer(expt::config::optimizer_defaults(type.name), problem.store.params());
    CHECK(opt->name() == type.name);
  }
}

TEST_CASE("load_state names a missing, extra, mis-typed or mis-shaped entry and changes nothing",
          "[optimizers][state]") {
  for (const auto& type : expt::config::optimizer_types()) {
    INFO(type.name);
    auto cfg = expt::config::optimizer_defaults(type.name);
    cfg.window = 3;
    cfg.rank = 2;
    expt::test::LeastSquares problem(5);
    const auto refs = expt::optim::param_refs(problem.store);
    auto stepped = expt::optim::make_optimizer(cfg, problem.store.params());
    for (std::int64_t t = 1; t <= 3; ++t) {
      problem.loss_and_grad();
      stepped->step(refs, t, 1e-2);
    }
    const StateDict good = stepped->state();
    REQUIRE_FALSE(good.entries().empty());

    auto fresh = expt::optim::make_optimizer(cfg, problem.store.params());
    const StateDict before = fresh->state();
    REQUIRE_FALSE(same_state(before, good));  // the steps changed the state, so a partial load would show
    for (const auto& entry : good.entries()) {
      const std::string& key = entry.first;
      INFO(key);
      StateDict missing = good;
      missing.entries().erase(key);
      StateDict misshaped = good;
      misshaped.entries()[key].shape.push_back(1);
      StateDict mistyped = good;
      mistyped.entries()[key].data = std::string("not an array");
      for (const StateDict* bad : {&missing, &misshaped, &mistyped}) {
        CHECK_THROWS_WITH(fresh->load_state(*bad), Catch::Contains("'" + key + "'"));
        CHECK(same_state(fresh->state(), before));
      }
    }
    StateDict extra = good;
    extra.put_scalar("not_an_entry", std::int64_t{1});
    CHECK_THROWS_WITH(fresh->load_state(extra), Catch::Contains("'not_an_entry'"));
    CHECK(same_state(fresh->state(), before));
    fresh->load_state(good);
    CHECK(same_state(fresh->state(), good));
  }
}
