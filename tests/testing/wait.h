// tests/testing/wait.h — a bounded poll for waiting on another thread's or process's progress.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace istioca::testing {

// True as soon as `pred` holds; false if it still does not after `timeout`. Polls every 10 ms.
inline bool WaitFor(const std::function<bool()>& pred,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace istioca::testing
