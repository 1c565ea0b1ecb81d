// base/periodic.h — the one stop-aware periodic thread (CA file reloader, local directory poller,
// liveness prober).
//
// Promises: the work function runs on one thread, never concurrently with itself; Stop() wakes
// the thread at once (it does not wait out the interval), waits for a run in progress to end,
// and is idempotent; the destructor stops. What it does not do: it does not catch exceptions,
// and the interval is a minimum wait on the steady clock, not a schedule that catches up.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "base/time.h"

namespace istioca {

class PeriodicThread {
 public:
  PeriodicThread() = default;
  ~PeriodicThread() { Stop(); }
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

  // Runs `work` after `interval`, then again every `interval`. No-op while already running.
  void Every(Duration interval, std::function<void()> work);
  // Runs `tick` after `first_delay`; each call returns the wait before the next one (so one
  // thread can interleave jobs of different periods). No-op while already running.
  void Start(Duration first_delay, std::function<Duration()> tick);
  void Stop();
  bool running() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace istioca
