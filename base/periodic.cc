#include "base/periodic.h"

#include <algorithm>
#include <utility>

namespace istioca {

void PeriodicThread::Every(Duration interval, std::function<void()> work) {
  Start(interval, [interval, work = std::move(work)] {
    work();
    return interval;
  });
}

void PeriodicThread::Start(Duration first_delay, std::function<Duration()> tick) {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this, first_delay, tick = std::move(tick)] {
    Duration wait = first_delay;
    std::unique_lock<std::mutex> l(mu_);
    while (!cv_.wait_for(l, std::max(wait, Duration::zero()), [this] { return stopping_; })) {
      l.unlock();
      wait = tick();
      l.lock();
    }
  });
}

void PeriodicThread::Stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

bool PeriodicThread::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return thread_.joinable();
}

}  // namespace istioca
