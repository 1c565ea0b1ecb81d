// k8s/rate.h — pacing requests to the API server: a token bucket and jittered backoff.
//
// Both are plain state machines over times given by the caller, so tests drive them with
// made-up instants; only the client decides to sleep for what they return.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>

namespace istioca::k8s {

using SteadyTime = std::chrono::steady_clock::time_point;
using SteadyDuration = std::chrono::steady_clock::duration;

// client-go's flowcontrol semantics: `burst` requests at once, then `qps` per second. A qps of
// 0 (or less) disables limiting. Reserve() takes a token (possibly one not yet earned) and says
// how long to wait before using it, so concurrent callers queue up fairly. Thread-safe.
class TokenBucket {
 public:
  TokenBucket(double qps, int burst);
  SteadyDuration Reserve(SteadyTime now);
  bool enabled() const { return qps_ > 0; }

 private:
  std::mutex mu_;
  const double qps_;
  const double burst_;
  double tokens_;
  SteadyTime last_{};
  bool started_ = false;
};

// Capped exponential backoff with full jitter in [d/2, d]: initial, 2×, 4×, ... up to `max`.
class Backoff {
 public:
  Backoff(SteadyDuration initial, SteadyDuration max, uint64_t seed = std::random_device{}());
  SteadyDuration Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  SteadyDuration initial_;
  SteadyDuration max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace istioca::k8s
