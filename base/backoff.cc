#include "base/backoff.h"

#include <algorithm>

namespace istioca {

std::chrono::nanoseconds BackoffDelay(int failures, std::chrono::nanoseconds initial,
                                      std::chrono::nanoseconds max, double jitter_fraction,
                                      double draw) {
  if (failures < 1 || initial <= std::chrono::nanoseconds::zero()) {
    return std::chrono::nanoseconds::zero();
  }
  std::chrono::nanoseconds d = initial;
  for (int i = 1; i < failures && d < max; ++i) d *= 2;
  d = std::min(d, max);
  const double shorten = std::clamp(jitter_fraction, 0.0, 1.0) * std::clamp(draw, 0.0, 1.0);
  if (shorten <= 0) return d;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d * (1.0 - shorten));
}

Backoff::Backoff(std::chrono::nanoseconds initial, std::chrono::nanoseconds max,
                 double jitter_fraction, uint64_t seed)
    : initial_(initial), max_(max), jitter_fraction_(jitter_fraction), rng_(seed) {}

std::chrono::nanoseconds Backoff::Next() {
  std::uniform_real_distribution<double> draw(0.0, 1.0);
  return BackoffDelay(++failures_, initial_, max_, jitter_fraction_, draw(rng_));
}

}  // namespace istioca
