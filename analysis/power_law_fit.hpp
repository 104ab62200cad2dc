// The AdamW data-scaling fit (docs/analysis.md "fit and residuals"): L(D) = alpha * D^-B + beta, fitted by least
// squares in loss space to a model size's best AdamW final losses, and its inverse
// D_eff(L) = (( L - beta ) / alpha)^(-1/B), the AdamW token budget that reaches loss L.
//
// Method (deterministic, no starting guess needed):
//   1. Profile over beta in [0, min L): for a fixed beta, log(L - beta) = log(alpha) - B log(D) is
//      linear, so (alpha, B) come from ordinary least squares in log space. beta runs over a grid
//      of gaps g = min L - beta spaced geometrically from min L down to 1e-9 min L (400 points), and
//      the best grid point is refined by golden-section search on log g between its neighbours,
//      minimising the loss-space residual sum of squares.
//   2. Levenberg-Marquardt on (log alpha, B, beta) in loss space from that start, keeping a step only
//      when it lowers the residual sum of squares and beta < min L (so every fitted point inverts).
// D is divided by the smallest fitted D inside the fit (conditioning); alpha is reported for D in
// the caller's units. With 3 points (3 parameters) the fit interpolates them whenever a decreasing
// convex power law through them exists (residuals ~0, zero degrees of freedom); with more points it
// is a least-squares fit with n - 3 degrees of freedom.
#pragma once

#include <string>
#include <vector>

namespace expt::analysis {

struct PowerLawFit {
  bool ok = false;
  std::string message;                       // why the fit failed, when !ok
  double alpha = 0, exponent = 0, beta = 0;  // L(D) = alpha * D^-exponent + beta
  double d_min = 0, d_max = 0;               // range of the fitted D
  double rss = 0;                            // sum of squared loss residuals
  int n_points = 0;
  std::vector<double> residuals;  // L_i - L(D_i), in input order

  double predict(double d) const;
};

// Needs at least 3 points with finite L > 0 and distinct D > 0; fails (ok = false, message) when
// the best power law does not decrease with D (exponent <= 0).
PowerLawFit fit_power_law(const std::vector<double>& d, const std::vector<double>& loss);

// The inverse of the fit at loss L.
struct EffectiveData {
  enum class Kind { inside, extrapolated_above, extrapolated_below, beyond_asymptote };
  Kind kind = Kind::inside;
  double d_eff = 0;  // +inf when beyond_asymptote (L <= beta: no AdamW budget reaches L)
};
EffectiveData invert_power_law(const PowerLawFit& fit, double loss);
const char* effective_data_flag(EffectiveData::Kind kind);

}  // namespace expt::analysis
