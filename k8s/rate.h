// k8s/rate.h — pacing requests to the API server: a token bucket (and the jitter of the
// shared backoff).
//
// The bucket is a plain state machine over times from a Clock (the daemon's, so tests drive it
// with a FakeClock; ReserveAt takes the instant directly); only the client decides to sleep for
// what it returns. A wall clock that steps back earns no tokens until it passes its last reading
// again, so a backward step can only slow requests down, never let a burst through.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

#include "base/backoff.h"
#include "base/time.h"

namespace istioca::k8s {

using SteadyTime = std::chrono::steady_clock::time_point;
using SteadyDuration = std::chrono::steady_clock::duration;

// client-go's flowcontrol semantics: `burst` requests at once, then `qps` per second. A qps of
// 0 (or less) disables limiting. Reserve() takes a token (possibly one not yet earned) and says
// how long to wait before using it, so concurrent callers queue up fairly. Thread-safe.
class TokenBucket {
 public:
  TokenBucket(double qps, int burst, const Clock& clock = SystemClock::Get());
  SteadyDuration Reserve() { return ReserveAt(clock_.Now()); }
  SteadyDuration ReserveAt(TimePoint now);
  bool enabled() const { return qps_ > 0; }

 private:
  const Clock& clock_;
  std::mutex mu_;
  const double qps_;
  const double burst_;
  double tokens_;
  TimePoint last_{};
  bool started_ = false;
};

// Retries against the API server back off with base/backoff.h, each delay drawn from
// [d/2, d] so that replicas restarted together do not retry in step.
using istioca::Backoff;
inline constexpr double kBackoffJitter = 0.5;

}  // namespace istioca::k8s
