// The DCT-II matrix against docs/derivations/dct.md: orthonormality and the s = 4 values.
#include "kernels/dct.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

TEST_CASE("DCT-II matrix is orthonormal and matches the s = 4 values", "[kernels][dct]") {
  for (int s : {1, 2, 3, 4, 7, 8, 512, 768}) {
    std::vector<double> C(static_cast<std::size_t>(s) * s);
    expt::kernels::dct2_matrix<double>(s, C);
    double worst = 0;
    for (int i = 0; i < s; ++i)
      for (int j = 0; j < s; ++j) {
        double dot = 0;
        for (int k = 0; k < s; ++k) dot += C[i * s + k] * C[j * s + k];
        worst = std::max(worst, std::abs(dot - (i == j ? 1.0 : 0.0)));
      }
    CHECK(worst < 1e-12);
  }
  std::vector<double> C(16);
  expt::kernels::dct2_matrix<double>(4, C);
  const double expected[16] = {0.5, 0.5,  0.5,  0.5, 0.653281, 0.270598,  -0.270598, -0.653281,
                               0.5, -0.5, -0.5, 0.5, 0.270598, -0.653281, 0.653281,  -0.270598};
  for (int k = 0; k < 16; ++k) CHECK(C[k] == Approx(expected[k]).margin(1e-6));
}
