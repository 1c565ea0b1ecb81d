#include "k8s/rate.h"

#include <algorithm>

namespace istioca::k8s {

TokenBucket::TokenBucket(double qps, int burst, const Clock& clock)
    : clock_(clock), qps_(qps), burst_(std::max(1, burst)), tokens_(std::max(1, burst)) {}

SteadyDuration TokenBucket::ReserveAt(TimePoint now) {
  if (qps_ <= 0) return SteadyDuration::zero();
  std::lock_guard<std::mutex> lock(mu_);
  if (started_ && now > last_) {
    double earned = std::chrono::duration<double>(now - last_).count() * qps_;
    tokens_ = std::min(burst_, tokens_ + earned);
  }
  if (!started_ || now > last_) last_ = now;
  started_ = true;
  tokens_ -= 1;
  if (tokens_ >= 0) return SteadyDuration::zero();
  // Negative tokens are debts owed by earlier reservations; this one waits for all of them.
  return std::chrono::duration_cast<SteadyDuration>(std::chrono::duration<double>(-tokens_ / qps_));
}

}  // namespace istioca::k8s
