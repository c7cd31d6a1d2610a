// The statistics of a kernel's timed calls: summarize turns the samples of one bench shape into
// the TimingStats that results report (min, median, 20th and 80th percentiles, mean, standard
// deviation, coefficient of variation) and that the timing loops stop on (a standard error small
// against the median).
#include <algorithm>
#include <cmath>

#include "evaluator/internal.hpp"

namespace kforge {

TimingStats summarize(std::vector<double> samples_us) {
  std::sort(samples_us.begin(), samples_us.end());
  TimingStats s;
  s.n = static_cast<int>(samples_us.size());
  if (samples_us.empty()) return s;
  auto quantile = [&](double q) {
    double pos = q * (s.n - 1);
    size_t lo = static_cast<size_t>(pos);
    size_t hi = std::min(lo + 1, samples_us.size() - 1);
    return samples_us[lo] + (pos - lo) * (samples_us[hi] - samples_us[lo]);
  };
  s.min_us = samples_us.front();
  s.median_us = quantile(0.5);
  s.p20_us = quantile(0.2);
  s.p80_us = quantile(0.8);
  double sum = 0, sq = 0;
  for (double v : samples_us) sum += v;
  s.mean_us = sum / s.n;
  for (double v : samples_us) sq += (v - s.mean_us) * (v - s.mean_us);
  s.std_us = s.n > 1 ? std::sqrt(sq / (s.n - 1)) : 0;
  s.cv = s.mean_us > 0 ? s.std_us / s.mean_us : 0;
  return s;
}

}  // namespace kforge
