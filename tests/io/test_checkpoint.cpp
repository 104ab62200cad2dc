// Checkpoints: bit-exact round trip of every StateDict entry type, COMMIT as the only proof of a
// valid checkpoint, quarantine of incomplete ones, retention.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <set>

#include "core/io/checkpoint.hpp"
#include "core/io/hdf5.hpp"
#include "io_test_util.hpp"

namespace fs = std::filesystem;
namespace io = expt::io;
using expt::StateDict;
using expt::io::test::bits;
using expt::io::test::read_whole_file;
using expt::io::test::TempDir;
using expt::io::test::write_whole_file;

namespace {

// Entries of every type and shape a component may save, with values that catch any conversion:
// NaN payloads, signed zeros, denormals, infinities, int64 extremes, strings with NUL bytes.
StateDict full_state() {
  StateDict s;
  const std::vector<float> f = {1.0f,
                                -0.0f,
                                std::bit_cast<float>(0x7fa00001u),  // signalling NaN with a payload
                                std::bit_cast<float>(0xffc00123u),  // negative quiet NaN with a payload
                                std::numeric_limits<float>::denorm_min(),
                                std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::max(),
                                0.1f};
  s.put("params", std::span<const float>(f));  // no shape: stored flat, read back without a shape
  s.put("optimizer/m/blocks.0.mixer.q_proj.weight", std::span<const float>(f), {2, 4});
  s.put("optimizer/v/blocks.0.mixer.q_proj.weight", std::span<const float>(f), {1, 2, 1, 4});
  const std::vector<double> d = {std::bit_cast<double>(0x7ff0000000000abcULL),
                                 -0.0,
                                 std::numeric_limits<double>::denorm_min(),
                                 1e-25,
                                 -1e300,
                                 0.1};
  s.put("optimizer/soap/Q", std::span<const double>(d), {3, 2});
  s.put_scalar("trainer/wall_s", 1234.5678901234567);
  s.put_scalar("trainer/best_eval_loss", std::numeric_limits<double>::infinity());
  const std::vector<std::int64_t> i = {std::numeric_limits<std::int64_t>::min(), -1, 0, 1,
                                       std::numeric_limits<std::int64_t>::max()};
  s.put("data/cursor", std::span<const std::int64_t>(i), {5});
  s.put_scalar("trainer/step", std::int64_t{100});
  s.put("empty/floats", std::span<const float>(), {0});
  s.put("empty/unshaped_ints", std::span<const std::int64_t>());
  s.put_string("trainer/config_hash", "0123456789abcdef");
  s.put_string("strings/with_nul", std::string("a\0b\0", 4));
  s.put_string("strings/empty", "");
  s.put_string("strings/utf8", "\xce\xb7\xe2\x82\xac");
  return s;
}

template <class T>
void require_same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    if constexpr (std::is_floating_point_v<T>)
      REQUIRE(bits(a[k]) == bits(b[k]));
    else
      REQUIRE(a[k] == b[k]);
  }
}

void require_same(const StateDict& a, const StateDict& b) {
  REQUIRE(a.entries().size() == b.entries().size());
  for (const auto& [key, x] : a.entries()) {
    INFO("entry " << key);
    REQUIRE(b.contains(key));
    const auto& y = b.entries().at(key);
    REQUIRE(x.shape == y.shape);
    REQUIRE(x.data.index() == y.data.index());
    std::visit(
        [&](const auto& xv) {
          using V = std::decay_t<decltype(xv)>;
          const auto& yv = std::get<V>(y.data);
          if constexpr (std::is_same_v<V, std::string>)
            REQUIRE(xv == yv);
          else
            require_same_bits(xv, yv);
        },
        x.data);
  }
}

}  // namespace

TEST_CASE("a checkpoint round-trips every entry bit for bit, with types and shapes", "[checkpoint]") {
  TempDir trial;
  io::CheckpointStore store(trial / "checkpoints");
  const StateDict state = full_state();
  store.save(100, state);
  REQUIRE(fs::exists(trial / "checkpoints" / "step-100" / "state.h5"));
  REQUIRE(read_whole_file(trial / "checkpoints" / "step-100" / "COMMIT") == "100\n");
  REQUIRE_FALSE(fs::exists(trial / "checkpoints" / "step-100" / "state.h5.tmp"));
  require_same(state, store.load(100));

  // The datasets sit at their key paths, browsable from h5py.
  namespace h5 = expt::io::h5;
  h5::File f = h5::open_file(trial / "checkpoints" / "step-100" / "state.h5");
  REQUIRE(h5::dataset_dims(h5::open_dataset(f, "optimizer/m/blocks.0.mixer.q_proj.weight")) ==
          std::vector<hsize_t>{2, 4});
  REQUIRE(h5::read_int_attribute(f, "step") == 100);

  // Saving the same step again replaces it.
  StateDict other;
  other.put_scalar("trainer/step", std::int64_t{7});
  store.save(100, other);
  require_same(other, store.load(100));
}

TEST_CASE("StateDict merge and take move entries under a prefix, values and shapes unchanged", "[checkpoint]") {
  StateDict part;
  part.put("m", std::vector<float>{1.5f, -0.0f, 3.0f, 4.0f}, {2, 2});
  part.put("count", std::vector<std::int64_t>{7});
  part.put("w", std::span<const double>(std::vector<double>{0.25, 0.5}));
  StateDict whole;
  whole.put_scalar("step", std::int64_t{3});
  whole.merge("optimizer", std::move(part));
  REQUIRE(whole.contains("optimizer/m"));
  REQUIRE(whole.floats("optimizer/m") == std::vector<float>{1.5f, -0.0f, 3.0f, 4.0f});
  REQUIRE(std::signbit(whole.floats("optimizer/m")[1]));
  REQUIRE(whole.entries().at("optimizer/m").shape == std::vector<std::int64_t>{2, 2});
  REQUIRE(whole.ints("optimizer/count") == std::vector<std::int64_t>{7});

  // "optimizer2/x" shares the prefix's characters but not the prefix "optimizer/".
  whole.put_scalar("optimizer2/x", 1.0);
  StateDict back = whole.take("optimizer");
  REQUIRE(back.entries().size() == 3);
  REQUIRE(back.floats("m") == std::vector<float>{1.5f, -0.0f, 3.0f, 4.0f});
  REQUIRE(back.entries().at("m").shape == std::vector<std::int64_t>{2, 2});
  REQUIRE(back.doubles("w") == std::vector<double>{0.25, 0.5});
  REQUIRE_FALSE(whole.contains("optimizer/m"));
  REQUIRE(whole.contains("optimizer2/x"));
  REQUIRE(whole.scalar_int("step") == 3);
  REQUIRE(whole.take("optimizer").entries().empty());
}

TEST_CASE("latest_committed ignores checkpoints without a valid COMMIT", "[checkpoint]") {
  TempDir trial;
  io::CheckpointStore store(trial / "checkpoints");
  REQUIRE_FALSE(store.latest_committed().has_value());  // no directory yet
  StateDict s;
  s.put_scalar("trainer/step", std::int64_t{1});
  store.save(10, s, 10);
  store.save(20, s, 10);
  store.save(30, s, 10);
  REQUIRE(store.latest_committed() == 30);
  // step-30 loses its COMMIT (a crash before it was written), step-40 has state but no COMMIT,
  // step-50 has a COMMIT naming another step, step-60 is not even a folder.
  fs::remove(trial / "checkpoints" / "step-30" / "COMMIT");
  fs::create_directories(trial / "checkpoints" / "step-40");
  fs::copy_file(trial / "checkpoints" / "step-20" / "state.h5", trial / "checkpoints" / "step-40" / "state.h5");
  fs::create_directories(trial / "checkpoints" / "step-50");
  fs::copy_file(trial / "checkpoints" / "step-20" / "state.h5", trial / "checkpoints" / "step-50" / "state.h5");
  write_whole_file(trial / "checkpoints" / "step-50" / "COMMIT", "5\n");
  write_whole_file(trial / "checkpoints" / "step-60", "60\n");
  REQUIRE(store.latest_committed() == 20);
  REQUIRE_THROWS_AS(store.load(30), std::runtime_error);
  REQUIRE_THROWS_AS(store.load(40), std::runtime_error);
  REQUIRE_THROWS_AS(store.load(50), std::runtime_error);
  REQUIRE(store.load(20).scalar_int("trainer/step") == 1);
}

TEST_CASE("quarantine_incomplete moves incomplete or damaged checkpoints, never deletes", "[checkpoint]") {
  TempDir trial;
  io::CheckpointStore store(trial / "checkpoints");
  StateDict s;
  s.put_scalar("x", 1.5);
  store.save(10, s, 10);
  store.save(20, s, 10);
  store.save(30, s, 10);
  fs::remove(trial / "checkpoints" / "step-30" / "COMMIT");                               // uncommitted
  write_whole_file(trial / "checkpoints" / "step-20" / "state.h5", "damaged, not HDF5");  // committed, damaged
  fs::create_directories(trial / "checkpoints" / "unrelated");                            // not a checkpoint

  const auto moved = store.quarantine_incomplete();
  REQUIRE(moved.size() == 2);
  std::set<std::string> names;
  for (const auto& p : moved) {
    REQUIRE(p.parent_path() == trial / "quarantine");
    REQUIRE(fs::exists(p / "state.h5"));  // contents kept
    names.insert(p.filename().string().substr(0, 8));
  }
  REQUIRE(names == std::set<std::string>{"step-20-", "step-30-"});
  REQUIRE_FALSE(fs::exists(trial / "checkpoints" / "step-20"));
  REQUIRE_FALSE(fs::exists(trial / "checkpoints" / "step-30"));
  REQUIRE(fs::exists(trial / "checkpoints" / "unrelated"));
  REQUIRE(store.latest_committed() == 10);
  REQUIRE(store.load(10).scalar_double("x") == 1.5);
  REQUIRE(store.quarantine_incomplete().empty());

  // The same name quarantined twice within one second gets a distinct folder.
  fs::create_directories(trial / "checkpoints" / "step-30");
  const auto again = store.quarantine_incomplete();
  REQUIRE(again.size() == 1);
  REQUIRE(fs::exists(again[0]));
  std::size_t in_quarantine = 0;
  for (const auto& e : fs::directory_iterator(trial / "quarantine")) in_quarantine += e.is_directory();
  REQUIRE(in_quarantine == 3);
}

TEST_CASE("save keeps the newest `keep` committed checkpoints", "[checkpoint]") {
  TempDir trial;
  io::CheckpointStore store(trial / "checkpoints");
  StateDict s;
  const auto folders = [&] {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(trial / "checkpoints")) names.insert(e.path().filename().string());
    return names;
  };
  for (std::int64_t step : {10, 20, 30, 40}) {
    s.put_scalar("step", step);
    store.save(step, s);  // keep = 2 by default
  }
  REQUIRE(folders() == std::set<std::string>{"step-30", "step-40"});
  REQUIRE(store.load(30).scalar_int("step") == 30);
  REQUIRE(store.load(40).scalar_int("step") == 40);

  // An uncommitted folder is not a committed checkpoint: retention neither counts nor deletes it.
  fs::create_directories(trial / "checkpoints" / "step-45");
  s.put_scalar("step", std::int64_t{50});
  store.save(50, s, 1);
  REQUIRE(folders() == std::set<std::string>{"step-45", "step-50"});
  REQUIRE_THROWS_AS(store.save(60, s, 0), std::invalid_argument);
}

TEST_CASE("save rejects keys and shapes that cannot round-trip", "[checkpoint]") {
  TempDir trial;
  io::CheckpointStore store(trial / "checkpoints");
  const std::vector<float> v = {1, 2, 3};
  const auto rejects = [&](const StateDict& s) { REQUIRE_THROWS_AS(store.save(1, s), std::invalid_argument); };
  StateDict prefix;
  prefix.put("a", std::span<const float>(v));
  prefix.put("a/b", std::span<const float>(v));
  rejects(prefix);
  for (const std::string key : {"", "/a", "a/", "a//b", "a/./b", "a/../b"}) {
    StateDict s;
    s.put(key, std::span<const float>(v));
    INFO("key '" << key << "'");
    rejects(s);
  }
  StateDict shape;
  shape.put("w", std::span<const float>(v), {2, 2});
  rejects(shape);
  StateDict negative;
  negative.put("w", std::span<const float>(v), {-3});
  rejects(negative);
  REQUIRE_FALSE(store.latest_committed().has_value());
}
