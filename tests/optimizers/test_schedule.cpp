// Learning-rate schedules against their closed forms (optimizers/schedule.hpp, docs/config.md), computed here.
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

#include "optimizers/schedule.hpp"

using expt::config::ScheduleConfig;
using expt::optim::scheduled_lr;
using expt::optim::warmup_steps;

namespace {

ScheduleConfig make(const std::string& type, double warmup, double min_lr_ratio = 0.0, double decay = 0.2) {
  ScheduleConfig cfg;
  cfg.type = type;
  cfg.warmup = warmup;
  cfg.min_lr_ratio = min_lr_ratio;
  cfg.decay = decay;
  return cfg;
}

constexpr double kPeak = 3e-3;
constexpr double kPi = std::numbers::pi;

}  // namespace

TEST_CASE("schedule: warmup length in steps and as a fraction", "[schedule]") {
  CHECK(warmup_steps(make("constant", 0.0), 100) == 0);
  CHECK(warmup_steps(make("constant", 1.0), 100) == 1);
  CHECK(warmup_steps(make("constant", 10.0), 100) == 10);
  CHECK(warmup_steps(make("constant", 0.05), 1000) == 50);
  CHECK(warmup_steps(make("constant", 0.1), 37) == 4);     // 3.7 rounds to 4
  CHECK(warmup_steps(make("constant", 0.02), 110) == 2);   // 2.2 rounds to 2
  CHECK(warmup_steps(make("constant", 500.0), 30) == 30);  // capped at the run length
  CHECK_THROWS_AS(warmup_steps(make("constant", -1.0), 10), std::invalid_argument);
  CHECK_THROWS_AS(warmup_steps(make("constant", 1.0), 0), std::invalid_argument);
}

TEST_CASE("schedule: values at chosen steps", "[schedule]") {
  SECTION("warmup is linear from 0 and reaches the peak at its last step") {
    const auto cfg = make("cosine", 10.0, 0.1);
    CHECK(scheduled_lr(cfg, kPeak, 1, 100) == Approx(kPeak / 10).epsilon(1e-12));
    CHECK(scheduled_lr(cfg, kPeak, 7, 100) == Approx(kPeak * 0.7).epsilon(1e-12));
    CHECK(scheduled_lr(cfg, kPeak, 10, 100) == Approx(kPeak).epsilon(1e-12));
  }
  SECTION("cosine") {
    const auto cfg = make("cosine", 10.0, 0.1);
    const double lo = 0.1 * kPeak;
    CHECK(scheduled_lr(cfg, kPeak, 11, 100) ==
          Approx(lo + (kPeak - lo) * 0.5 * (1 + std::cos(kPi / 90))).epsilon(1e-12));
    CHECK(scheduled_lr(cfg, kPeak, 55, 100) == Approx(0.5 * (kPeak + lo)).epsilon(1e-12));  // half way
    CHECK(scheduled_lr(cfg, kPeak, 100, 100) == Approx(lo).epsilon(1e-12));
  }
  SECTION("linear") {
    const auto cfg = make("linear", 0.0);
    for (int s = 1; s <= 10; ++s)
      CHECK(scheduled_lr(cfg, kPeak, s, 10) == Approx(kPeak * (1.0 - s / 10.0)).margin(1e-15));
  }
  SECTION("wsd") {
    const auto cfg = make("wsd", 10.0, 0.0, 0.2);  // 20 decay steps: 81..100
    CHECK(scheduled_lr(cfg, kPeak, 11, 100) == kPeak);
    CHECK(scheduled_lr(cfg, kPeak, 80, 100) == kPeak);
    CHECK(scheduled_lr(cfg, kPeak, 81, 100) == Approx(kPeak * 19.0 / 20.0).epsilon(1e-12));
    CHECK(scheduled_lr(cfg, kPeak, 90, 100) == Approx(kPeak * 0.5).epsilon(1e-12));
    CHECK(scheduled_lr(cfg, kPeak, 100, 100) == Approx(0.0).margin(1e-18));
    // A decay longer than the post-warmup part is cut to it: wsd becomes linear after warmup.
    const auto long_decay = make("wsd", 50.0, 0.0, 0.9);
    CHECK(scheduled_lr(long_decay, kPeak, 75, 100) == Approx(kPeak * 0.5).epsilon(1e-12));
  }
  SECTION("constant") {
    for (int s : {1, 50, 100}) CHECK(scheduled_lr(make("constant", 0.0), kPeak, s, 100) == kPeak);
    CHECK(scheduled_lr(make("constant", 4.0), kPeak, 2, 100) == Approx(kPeak / 2).epsilon(1e-12));
  }
}

TEST_CASE("schedule: whole trajectories equal the piecewise closed forms", "[schedule]") {
  const std::int64_t N = 37;
  const double ratio = 0.25, lo = ratio * kPeak;
  const std::int64_t W = 4;  // round(0.1 * 37)
  const std::int64_t D = 7;  // round(0.2 * 37)
  for (const std::string type : {"constant", "cosine", "linear", "wsd"}) {
    const auto cfg = make(type, 0.1, ratio, 0.2);
    for (std::int64_t step = 1; step <= N; ++step) {
      double expected;
      if (step <= W) {
        expected = kPeak * step / W;
      } else if (type == "constant") {
        expected = kPeak;
      } else if (type == "cosine") {
        expected = lo + (kPeak - lo) * 0.5 * (1 + std::cos(kPi * (step - W) / (N - W)));
      } else if (type == "linear") {
        expected = kPeak - (kPeak - lo) * (step - W) / double(N - W);
      } else {
        expected = step <= N - D ? kPeak : kPeak - (kPeak - lo) * (step - (N - D)) / double(D);
      }
      INFO(type << " step " << step);
      CHECK(scheduled_lr(cfg, kPeak, step, N) == Approx(expected).epsilon(1e-12));
    }
  }
}

TEST_CASE("schedule: edge cases", "[schedule]") {
  SECTION("warmup 0: decay starts at the first update") {
    CHECK(scheduled_lr(make("cosine", 0.0), kPeak, 1, 4) == Approx(kPeak * 0.5 * (1 + std::cos(kPi / 4))));
    CHECK(scheduled_lr(make("linear", 0.0), kPeak, 1, 4) == Approx(kPeak * 0.75));
  }
  SECTION("warmup == steps: warmup only, last update at the peak") {
    for (const std::string type : {"constant", "cosine", "linear", "wsd"}) {
      for (int s = 1; s <= 8; ++s) CHECK(scheduled_lr(make(type, 8.0), kPeak, s, 8) == Approx(kPeak * s / 8.0));
      CHECK(scheduled_lr(make(type, 0.9999), kPeak, 8, 8) == Approx(kPeak));  // fraction rounds to all 8 steps
    }
  }
  SECTION("total 1") {
    CHECK(scheduled_lr(make("constant", 0.0), kPeak, 1, 1) == kPeak);
    CHECK(scheduled_lr(make("cosine", 1.0), kPeak, 1, 1) == kPeak);  // the one update is the end of warmup
    CHECK(scheduled_lr(make("cosine", 0.0, 0.5), kPeak, 1, 1) == Approx(0.5 * kPeak));
    CHECK(scheduled_lr(make("linear", 0.0, 0.5), kPeak, 1, 1) == Approx(0.5 * kPeak));
    CHECK(scheduled_lr(make("wsd", 0.0, 0.5, 0.2), kPeak, 1, 1) == kPeak);  // round(0.2) = 0 decay steps
    CHECK(scheduled_lr(make("wsd", 0.0, 0.5, 0.6), kPeak, 1, 1) == Approx(0.5 * kPeak));
  }
  SECTION("invalid arguments") {
    CHECK_THROWS_AS(scheduled_lr(make("cosine", 0.0), kPeak, 0, 10), std::invalid_argument);
    CHECK_THROWS_AS(scheduled_lr(make("cosine", 0.0), kPeak, 11, 10), std::invalid_argument);
    CHECK_THROWS_AS(scheduled_lr(make("step", 0.0), kPeak, 1, 10), std::invalid_argument);
    CHECK_THROWS_AS(scheduled_lr(make("cosine", 0.0, -0.1), kPeak, 1, 10), std::invalid_argument);
    CHECK_THROWS_AS(scheduled_lr(make("wsd", 0.0, 0.0, 1.5), kPeak, 1, 10), std::invalid_argument);
  }
}

TEST_CASE("schedule: wsd_decay_start is the last update at the stable lr", "[schedule]") {
  // The cooldown start WSD branches fork at: every update <= it has the peak lr (after warmup),
  // every later one less, for many lengths, decays and absolute warmups.
  for (double decay : {0.0, 0.1, 0.2, 0.25, 0.5, 1.0})
    for (double warmup : {0.0, 1.0, 7.0})
      for (std::int64_t n : {1, 2, 8, 9, 10, 37, 100, 101}) {
        ScheduleConfig cfg;
        cfg.type = "wsd";
        cfg.decay = decay;
        cfg.warmup = warmup;
        cfg.min_lr_ratio = 0.0;
        const std::int64_t c = expt::optim::wsd_decay_start(cfg, n);
        const std::int64_t w = warmup_steps(cfg, n);
        CAPTURE(decay, warmup, n, c, w);
        REQUIRE(c >= w);
        REQUIRE(c <= n);
        for (std::int64_t s = w + 1; s <= n; ++s) {
          const double lr = scheduled_lr(cfg, 1.0, s, n);
          if (s <= c)
            REQUIRE(lr == 1.0);
          else
            REQUIRE(lr < 1.0);
        }
      }
}

TEST_CASE("schedule: wsd with an absolute warmup agrees between lengths up to the shorter cooldown start",
          "[schedule]") {
  ScheduleConfig cfg;
  cfg.type = "wsd";
  cfg.decay = 0.2;
  cfg.warmup = 5;
  for (std::int64_t shorter : {10, 23, 50})
    for (std::int64_t longer : {shorter + 1, 2 * shorter, 8 * shorter}) {
      const std::int64_t c = expt::optim::wsd_decay_start(cfg, shorter);
      for (std::int64_t s = 1; s <= c; ++s)
        REQUIRE(scheduled_lr(cfg, 3e-3, s, shorter) == scheduled_lr(cfg, 3e-3, s, longer));
      // ...and not one step further: the shorter run's cooldown has begun.
      REQUIRE(scheduled_lr(cfg, 3e-3, c + 1, shorter) != scheduled_lr(cfg, 3e-3, c + 1, longer));
    }
}
