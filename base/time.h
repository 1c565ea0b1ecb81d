// base/time.h — time as a parameter: a Clock interface, Go-syntax durations, RFC 3339.
//
// Every decision in istio-ca takes `now` from a Clock so that tests move time by hand.
// Durations follow Go's time.ParseDuration ("90s", "1h30m", "1.5h", "300ms") plus "d" for
// 24h days, with overflow of the 64-bit nanosecond count reported as an error rather than
// wrapping (Istio's grace-period overflow, istio/istio#18357, came from such a wrap).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

#include "base/status.h"

namespace istioca {

// Microseconds, not the nanoseconds of system_clock::time_point: an int64 nanosecond count ends
// in 2262, yet RFC 5280 §4.1.2.5 gives 99991231235959Z to certificates with no well-defined
// expiration, and such roots exist. An int64 microsecond count reaches ±292,000 years, so every
// certificate time (0000-01-01 to 9999-12-31) is representable and differences between them
// cannot overflow.
using Duration = std::chrono::microseconds;
using TimePoint = std::chrono::time_point<std::chrono::system_clock, Duration>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
  static const SystemClock& Get();
};

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start) : now_(start) {}
  TimePoint Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void Advance(Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += std::chrono::duration_cast<TimePoint::duration>(d);
  }
  void Set(TimePoint t) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ = t;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_;
};

// Parses a Go duration, with "d" = 24h accepted. A leading '-' is allowed; callers that need a
// positive value check it themselves so their error names the flag.
Result<Duration> ParseDuration(std::string_view text);

// Formats like Go's Duration.String() but in whole units down to seconds and with days:
// "89d23h59m", "23h59m59s", "-1h2m", "0s".
std::string FormatDuration(Duration d);

// RFC 3339 in UTC with second precision (years 0000 to 9999): "2026-11-29T15:40:56Z".
std::string FormatRfc3339(TimePoint t);
// Accepts "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)" (also a space or lowercase 't' as separator).
Result<TimePoint> ParseRfc3339(std::string_view text);

// Seconds since the epoch, the unit of the *_timestamp metrics.
inline int64_t UnixSeconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
inline TimePoint FromUnixSeconds(int64_t seconds) {
  return TimePoint(std::chrono::seconds(seconds));
}

}  // namespace istioca
