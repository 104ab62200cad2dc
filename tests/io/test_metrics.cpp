// Metrics segments: exact round trip of every row (NaN, infinities, signed zeros included), the
// eval schema read back from the file, and the writer's checks.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "core/io/hdf5.hpp"
#include "core/io/metrics.hpp"
#include "io_test_util.hpp"

namespace fs = std::filesystem;
namespace io = expt::io;
using expt::io::test::bits;
using expt::io::test::TempDir;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::bit_cast<float>(0x7fc01234u);  // a NaN with a payload, which must survive

io::TrainRow train_row(std::int64_t step) {
  const float s = static_cast<float>(step);
  return io::TrainRow{step,
                      step * 512,
                      0.125 * static_cast<double>(step),
                      2.0f / (1.0f + s),
                      1e-3f * s,
                      0.5f + s,
                      1e-4f * s,
                      10.0f + s,
                      static_cast<std::uint8_t>(step % 7 == 3),
                      0};
}

io::EvalSchema schema_3() { return io::EvalSchema{{"loss@6", "token_acc@6", "seq_acc@6"}, {6, 3}}; }

io::EvalRow eval_row(std::int64_t step) {
  const float s = static_cast<float>(step);
  io::EvalRow r{step, step * 512, 0.5 * static_cast<double>(step), {1.0f / (1.0f + s), 0.25f, 0.125f}, {}};
  r.prefix_acc.push_back({1.0f, 0.9f, 0.8f, 0.7f, 0.6f, s});
  r.prefix_acc.push_back({0.5f, 0.25f, -s});
  return r;
}

void require_same(const io::TrainRow& a, const io::TrainRow& b) {
  REQUIRE(a.step == b.step);
  REQUIRE(a.tokens == b.tokens);
  REQUIRE(bits(a.wall_s) == bits(b.wall_s));
  REQUIRE(bits(a.loss) == bits(b.loss));
  REQUIRE(bits(a.lr) == bits(b.lr));
  REQUIRE(bits(a.grad_norm) == bits(b.grad_norm));
  REQUIRE(bits(a.update_norm) == bits(b.update_norm));
  REQUIRE(bits(a.param_norm) == bits(b.param_norm));
  REQUIRE(a.skipped == b.skipped);
  REQUIRE(a.nonfinite == b.nonfinite);
}

void require_same(const io::EvalRow& a, const io::EvalRow& b) {
  REQUIRE(a.step == b.step);
  REQUIRE(a.tokens == b.tokens);
  REQUIRE(bits(a.wall_s) == bits(b.wall_s));
  REQUIRE(a.values.size() == b.values.size());
  for (std::size_t i = 0; i < a.values.size(); ++i) REQUIRE(bits(a.values[i]) == bits(b.values[i]));
  REQUIRE(a.prefix_acc.size() == b.prefix_acc.size());
  for (std::size_t k = 0; k < a.prefix_acc.size(); ++k) {
    REQUIRE(a.prefix_acc[k].size() == b.prefix_acc[k].size());
    for (std::size_t i = 0; i < a.prefix_acc[k].size(); ++i)
      REQUIRE(bits(a.prefix_acc[k][i]) == bits(b.prefix_acc[k][i]));
  }
}

}  // namespace

TEST_CASE("a metrics segment round-trips every row exactly, non-finite values included", "[metrics]") {
  TempDir dir;
  const fs::path file = dir / "metrics" / "seg-2-100.h5";
  std::vector<io::TrainRow> train;
  for (std::int64_t s = 100; s < 110; ++s) train.push_back(train_row(s));
  train[1].loss = kNaN;
  train[1].nonfinite = 1;
  train[2].loss = kInf;
  train[3].grad_norm = -kInf;
  train[4].loss = -0.0f;
  train[5].lr = std::numeric_limits<float>::denorm_min();
  train[6].wall_s = std::numeric_limits<double>::quiet_NaN();
  std::vector<io::EvalRow> evals = {eval_row(100), eval_row(105), eval_row(109)};
  evals[1].values[0] = kNaN;
  evals[2].values[0] = kInf;
  std::vector<io::EventRow> events = {{100, 1.5, "checkpoint", ""},
                                      {101, 2.5, "nan", "loss nan grad_norm inf"},
                                      {101, 2.5, "skip_step", "duplicate step of an event is allowed"}};
  {
    io::MetricsSegmentWriter w(file, schema_3(), 2, 100);
    for (std::size_t i = 0; i < 5; ++i) w.append_train(train[i]);
    w.append_eval(evals[0]);
    w.append_event(events[0]);
    w.flush();  // rows written in two appends must read back as one series
    for (std::size_t i = 5; i < train.size(); ++i) w.append_train(train[i]);
    w.append_eval(evals[1]);
    w.append_eval(evals[2]);
    w.append_event(events[1]);
    w.append_event(events[2]);
    w.close();
    w.close();  // idempotent
    REQUIRE_THROWS_AS(w.append_train(train_row(200)), std::logic_error);
  }
  const auto train_back = io::read_train_rows(file);
  REQUIRE(train_back.size() == train.size());
  for (std::size_t i = 0; i < train.size(); ++i) require_same(train[i], train_back[i]);

  io::EvalSchema schema_back;
  const auto evals_back = io::read_eval_rows(file, &schema_back);
  REQUIRE(schema_back == schema_3());  // fields and prefix lengths, in the written order (6 before 3)
  REQUIRE(evals_back.size() == evals.size());
  for (std::size_t i = 0; i < evals.size(); ++i) require_same(evals[i], evals_back[i]);

  const auto events_back = io::read_event_rows(file);
  REQUIRE(events_back.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    REQUIRE(events_back[i].step == events[i].step);
    REQUIRE(events_back[i].kind == events[i].kind);
    REQUIRE(events_back[i].detail == events[i].detail);
  }

  namespace h5 = expt::io::h5;
  h5::File f = h5::open_file(file);
  REQUIRE(h5::read_int_attribute(f, "schema_version") == 1);
  REQUIRE(h5::read_int_attribute(f, "attempt") == 2);
  REQUIRE(h5::read_int_attribute(f, "first_step") == 100);
  // Field names and order as docs/results-format.md fixes them.
  REQUIRE(h5::compound_field_names(h5::open_dataset(f, "metrics/train")) ==
          std::vector<std::string>{"step", "tokens", "wall_s", "loss", "lr", "grad_norm", "update_norm", "param_norm",
                                   "skipped", "nonfinite"});
  REQUIRE(h5::compound_field_names(h5::open_dataset(f, "metrics/eval")) ==
          std::vector<std::string>{"step", "tokens", "wall_s", "loss@6", "token_acc@6", "seq_acc@6"});
  REQUIRE(h5::compound_field_names(h5::open_dataset(f, "events")) ==
          std::vector<std::string>{"step", "wall_s", "kind", "detail"});
  REQUIRE(h5::dataset_dims(h5::open_dataset(f, "metrics/eval_prefix_acc/L6")) == std::vector<hsize_t>{3, 6});
}

TEST_CASE("event text is truncated to 16 / 128 bytes without splitting a UTF-8 character", "[metrics]") {
  TempDir dir;
  const fs::path file = dir / "seg-1-0.h5";
  // 127 ASCII bytes then a 2-byte character: the character would straddle the 128-byte limit.
  const std::string detail = std::string(127, 'd') + "\xc3\xa9" + "tail";
  const std::string kind = "a_kind_longer_than_sixteen";
  {
    io::MetricsSegmentWriter w(file, io::EvalSchema{}, 1, 0);
    w.append_event({0, 0.0, kind, detail});
    w.append_event({1, 0.0, "exactly16bytes__", std::string(128, 'x')});
  }  // the destructor closes the segment
  const auto events = io::read_event_rows(file);
  REQUIRE(events.size() == 2);
  REQUIRE(events[0].kind == kind.substr(0, 16));
  REQUIRE(events[0].detail == std::string(127, 'd'));
  REQUIRE(events[1].kind == "exactly16bytes__");
  REQUIRE(events[1].detail == std::string(128, 'x'));
}

TEST_CASE("many train rows (more than one buffer chunk) round-trip", "[metrics]") {
  TempDir dir;
  const fs::path file = dir / "seg-1-0.h5";
  const std::int64_t n = 9000;  // crosses the 4096-row automatic flush twice
  {
    io::MetricsSegmentWriter w(file, io::EvalSchema{{"loss@8"}, {}}, 1, 0);
    for (std::int64_t s = 0; s < n; ++s) w.append_train(train_row(s));
    w.append_eval(io::EvalRow{n - 1, 0, 0.0, {0.5f}, {}});
  }
  const auto back = io::read_train_rows(file);
  REQUIRE(back.size() == static_cast<std::size_t>(n));
  for (std::int64_t s = 0; s < n; s += 997) require_same(back[static_cast<std::size_t>(s)], train_row(s));
  require_same(back.back(), train_row(n - 1));
  io::EvalSchema schema;
  REQUIRE(io::read_eval_rows(file, &schema).size() == 1);
  REQUIRE(schema.prefix_lengths.empty());
}

TEST_CASE("the segment writer rejects rows that break its contract", "[metrics]") {
  TempDir dir;
  io::MetricsSegmentWriter w(dir / "seg-1-10.h5", schema_3(), 1, 10);
  REQUIRE_THROWS_AS(w.append_train(train_row(9)), std::invalid_argument);  // below first_step
  w.append_train(train_row(10));
  REQUIRE_THROWS_AS(w.append_train(train_row(10)), std::invalid_argument);  // logged twice
  w.append_train(train_row(12));
  REQUIRE_THROWS_AS(w.append_train(train_row(11)), std::invalid_argument);  // out of order
  io::EvalRow bad = eval_row(10);
  bad.values.pop_back();
  REQUIRE_THROWS_AS(w.append_eval(bad), std::invalid_argument);
  bad = eval_row(10);
  bad.prefix_acc[1].push_back(1.0f);
  REQUIRE_THROWS_AS(w.append_eval(bad), std::invalid_argument);
  bad = eval_row(10);
  bad.prefix_acc.pop_back();
  REQUIRE_THROWS_AS(w.append_eval(bad), std::invalid_argument);
  w.append_eval(eval_row(10));
  REQUIRE_THROWS_AS(w.append_eval(eval_row(10)), std::invalid_argument);
  REQUIRE_THROWS_AS(w.append_event({-1, 0.0, "x", ""}), std::invalid_argument);
  w.close();
  REQUIRE(io::read_train_rows(dir / "seg-1-10.h5").size() == 2);

  // Malformed schemas and arguments.
  REQUIRE_THROWS_AS(io::MetricsSegmentWriter(dir / "a.h5", io::EvalSchema{{"x", "x"}, {}}, 1, 0),
                    std::invalid_argument);
  REQUIRE_THROWS_AS(io::MetricsSegmentWriter(dir / "b.h5", io::EvalSchema{{"step"}, {}}, 1, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(io::MetricsSegmentWriter(dir / "c.h5", io::EvalSchema{{""}, {}}, 1, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(io::MetricsSegmentWriter(dir / "d.h5", io::EvalSchema{{}, {4, 4}}, 1, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(io::MetricsSegmentWriter(dir / "e.h5", io::EvalSchema{{}, {0}}, 1, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(io::MetricsSegmentWriter(dir / "f.h5", io::EvalSchema{}, 0, 0), std::invalid_argument);
  // A segment is never overwritten.
  REQUIRE_THROWS_AS(io::MetricsSegmentWriter(dir / "seg-1-10.h5", schema_3(), 1, 10), std::runtime_error);
  REQUIRE(io::read_train_rows(dir / "seg-1-10.h5").size() == 2);
}
