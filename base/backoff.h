// base/backoff.h — capped exponential backoff, the one copy (Kubernetes client and informers,
// the secret controller, the node agent).
//
// Deterministic unless the caller asks for jitter: BackoffDelay is a pure function, and the
// jitter draw is a parameter (or, in Backoff, comes from a seeded generator).
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace istioca {

// The delay after `failures` consecutive failures: initial, 2×initial, 4×initial, ... capped at
// `max`; zero when failures < 1. With jitter, the delay is shortened by up to `jitter_fraction`
// of itself: d × (1 − jitter_fraction × draw), where draw ∈ [0, 1] is supplied by the caller
// (both are clamped to [0, 1]). Jitter spreads replicas apart and never exceeds the cap.
std::chrono::nanoseconds BackoffDelay(int failures, std::chrono::nanoseconds initial,
                                      std::chrono::nanoseconds max, double jitter_fraction = 0,
                                      double draw = 0);

// The same as a counter of consecutive failures with its own seeded random draws: Next() is
// the delay after one more failure, Reset() after a success. Not thread-safe.
class Backoff {
 public:
  Backoff(std::chrono::nanoseconds initial, std::chrono::nanoseconds max, double jitter_fraction,
          uint64_t seed = std::random_device{}());
  std::chrono::nanoseconds Next();
  void Reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  std::chrono::nanoseconds initial_;
  std::chrono::nanoseconds max_;
  double jitter_fraction_;
  int failures_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace istioca
