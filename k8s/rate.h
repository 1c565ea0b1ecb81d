// k8s/rate.h — pacing requests to the API server: a token bucket (and the jitter of the
// shared backoff).
//
// The bucket is a plain state machine over times given by the caller, so tests drive it with
// made-up instants; only the client decides to sleep for what it returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

#include "base/backoff.h"

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

// Retries against the API server back off with base/backoff.h, each delay drawn from
// [d/2, d] so that replicas restarted together do not retry in step.
using istioca::Backoff;
inline constexpr double kBackoffJitter = 0.5;

}  // namespace istioca::k8s
