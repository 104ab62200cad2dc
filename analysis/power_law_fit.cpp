#include "analysis/power_law_fit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace expt::analysis {

double PowerLawFit::predict(double d) const { return alpha * std::pow(d, -exponent) + beta; }

namespace {

struct Params {
  double log_alpha = 0, b = 0, beta = 0;  // D already divided by the smallest D
};

double rss_of(const Params& p, const std::vector<double>& x, const std::vector<double>& y) {
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double r = std::exp(p.log_alpha) * std::pow(x[i], -p.b) + p.beta - y[i];
    s += r * r;
  }
  return s;
}

// OLS of log(y - beta) on log(x): log(y - beta) = log_alpha - b log(x). Needs beta < min y.
Params log_space_fit(double beta, const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double u = std::log(x[i]), v = std::log(y[i] - beta);
    sx += u;
    sy += v;
    sxx += u * u;
    sxy += u * v;
  }
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  return Params{(sy - slope * sx) / n, -slope, beta};
}

// Solves the 3x3 system A z = r by Gaussian elimination with partial pivoting; false if singular.
bool solve3(double a[3][3], double r[3], double z[3]) {
  for (int c = 0; c < 3; ++c) {
    int piv = c;
    for (int i = c + 1; i < 3; ++i)
      if (std::fabs(a[i][c]) > std::fabs(a[piv][c])) piv = i;
    if (std::fabs(a[piv][c]) < 1e-300) return false;
    std::swap(a[c], a[piv]);
    std::swap(r[c], r[piv]);
    for (int i = c + 1; i < 3; ++i) {
      const double f = a[i][c] / a[c][c];
      for (int j = c; j < 3; ++j) a[i][j] -= f * a[c][j];
      r[i] -= f * r[c];
    }
  }
  for (int c = 2; c >= 0; --c) {
    double s = r[c];
    for (int j = c + 1; j < 3; ++j) s -= a[c][j] * z[j];
    z[c] = s / a[c][c];
  }
  return true;
}

// Levenberg-Marquardt on (log_alpha, b, beta): residual r_i = alpha x_i^-b + beta - y_i with
// dr/dlog_alpha = alpha x^-b, dr/db = -alpha x^-b log x, dr/dbeta = 1.
Params levenberg_marquardt(Params p, const std::vector<double>& x, const std::vector<double>& y, double beta_max) {
  double lambda = 1e-3;
  double current = rss_of(p, x, y);
  for (int iter = 0; iter < 200 && current > 0; ++iter) {
    double jtj[3][3] = {}, jtr[3] = {};
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double t = std::exp(p.log_alpha) * std::pow(x[i], -p.b);
      const double r = t + p.beta - y[i];
      const double j[3] = {t, -t * std::log(x[i]), 1.0};
      for (int a = 0; a < 3; ++a) {
        jtr[a] += j[a] * r;
        for (int b = 0; b < 3; ++b) jtj[a][b] += j[a] * j[b];
      }
    }
    bool improved = false;
    for (int tries = 0; tries < 30 && !improved; ++tries) {
      double a[3][3], rhs[3], step[3];
      for (int u = 0; u < 3; ++u) {
        for (int v = 0; v < 3; ++v) a[u][v] = jtj[u][v];
        a[u][u] += lambda * (jtj[u][u] > 0 ? jtj[u][u] : 1.0);
        rhs[u] = -jtr[u];
      }
      if (solve3(a, rhs, step)) {
        const Params q{p.log_alpha + step[0], p.b + step[1], p.beta + step[2]};
        const double value = rss_of(q, x, y);
        if (q.beta < beta_max && q.beta >= 0 && std::isfinite(value) && value < current) {
          const double gain = current - value;
          p = q;
          current = value;
          lambda = std::max(lambda / 10, 1e-12);
          improved = true;
          if (gain <= 1e-15 * (1 + current)) return p;
          break;
        }
      }
      lambda *= 10;
    }
    if (!improved) break;
  }
  return p;
}

}  // namespace

PowerLawFit fit_power_law(const std::vector<double>& d, const std::vector<double>& loss) {
  PowerLawFit fit;
  fit.n_points = static_cast<int>(d.size());
  if (d.size() != loss.size()) {
    fit.message = "D and L differ in length";
    return fit;
  }
  if (d.size() < 3) {
    fit.message = "needs at least 3 data points (3 parameters), has " + std::to_string(d.size());
    return fit;
  }
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (!(d[i] > 0) || !std::isfinite(d[i]) || !(loss[i] > 0) || !std::isfinite(loss[i])) {
      fit.message = "every point needs a finite D > 0 and a finite loss > 0";
      return fit;
    }
    for (std::size_t j = 0; j < i; ++j)
      if (d[j] == d[i]) {
        fit.message = "two points share the same D";
        return fit;
      }
  }
  fit.d_min = *std::min_element(d.begin(), d.end());
  fit.d_max = *std::max_element(d.begin(), d.end());
  std::vector<double> x(d.size());
  for (std::size_t i = 0; i < d.size(); ++i) x[i] = d[i] / fit.d_min;
  const double l_min = *std::min_element(loss.begin(), loss.end());

  // 1. Profile over beta = l_min - g, g geometric in [1e-9 l_min, l_min].
  const int grid = 400;
  const double log_g_hi = std::log(l_min), log_g_lo = std::log(1e-9 * l_min);
  const auto profile = [&](double log_g) {
    const Params p = log_space_fit(l_min - std::exp(log_g), x, loss);
    const double value = rss_of(p, x, loss);
    return std::isfinite(value) ? value : std::numeric_limits<double>::infinity();
  };
  int best_k = 0;
  double best_value = std::numeric_limits<double>::infinity();
  for (int k = 0; k <= grid; ++k) {
    const double value = profile(log_g_hi + (log_g_lo - log_g_hi) * k / grid);
    if (value < best_value) {
      best_value = value;
      best_k = k;
    }
  }
  double lo = log_g_hi + (log_g_lo - log_g_hi) * std::max(best_k - 1, 0) / grid;
  double hi = log_g_hi + (log_g_lo - log_g_hi) * std::min(best_k + 1, grid) / grid;
  const double golden = (std::sqrt(5.0) - 1) / 2;
  double c = hi - golden * (hi - lo), e = lo + golden * (hi - lo);
  double fc = profile(c), fe = profile(e);
  for (int it = 0; it < 80; ++it) {
    if (fc < fe) {
      hi = e;
      e = c;
      fe = fc;
      c = hi - golden * (hi - lo);
      fc = profile(c);
    } else {
      lo = c;
      c = e;
      fc = fe;
      e = lo + golden * (hi - lo);
      fe = profile(e);
    }
  }
  double log_g = (lo + hi) / 2;
  if (profile(log_g) > best_value) log_g = log_g_hi + (log_g_lo - log_g_hi) * best_k / grid;
  Params p = log_space_fit(l_min - std::exp(log_g), x, loss);

  // 2. Polish in loss space.
  p = levenberg_marquardt(p, x, loss, l_min);

  if (!(p.b > 0) || !std::isfinite(p.log_alpha)) {
    fit.message = "the best power law does not decrease with D (AdamW's best loss does not fall as D grows)";
    return fit;
  }
  fit.ok = true;
  fit.exponent = p.b;
  fit.beta = p.beta;
  // alpha x^-b = alpha (D / d_min)^-b = (alpha d_min^b) D^-b
  fit.alpha = std::exp(p.log_alpha) * std::pow(fit.d_min, p.b);
  fit.rss = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const double r = loss[i] - (std::exp(p.log_alpha) * std::pow(x[i], -p.b) + p.beta);
    fit.residuals.push_back(r);
    fit.rss += r * r;
  }
  return fit;
}

EffectiveData invert_power_law(const PowerLawFit& fit, double loss) {
  EffectiveData out;
  if (!(loss > fit.beta)) {  // also +inf never lands here: +inf > beta; handled by the caller
    out.kind = EffectiveData::Kind::beyond_asymptote;
    out.d_eff = std::numeric_limits<double>::infinity();
    return out;
  }
  // D_eff = ((L - beta) / alpha)^(-1/B), computed relative to d_min for range: alpha = a d_min^B.
  const double a = fit.alpha / std::pow(fit.d_min, fit.exponent);
  out.d_eff = fit.d_min * std::pow((loss - fit.beta) / a, -1.0 / fit.exponent);
  const double slack = 1e-9;
  if (out.d_eff > fit.d_max * (1 + slack))
    out.kind = EffectiveData::Kind::extrapolated_above;
  else if (out.d_eff < fit.d_min * (1 - slack))
    out.kind = EffectiveData::Kind::extrapolated_below;
  return out;
}

const char* effective_data_flag(EffectiveData::Kind kind) {
  switch (kind) {
    case EffectiveData::Kind::inside:
      return "";
    case EffectiveData::Kind::extrapolated_above:
      return "extrapolated above fitted D";
    case EffectiveData::Kind::extrapolated_below:
      return "extrapolated below fitted D";
    case EffectiveData::Kind::beyond_asymptote:
      return "beyond fit: L <= beta";
  }
  return "";
}

}  // namespace expt::analysis
