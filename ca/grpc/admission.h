// ca/grpc/admission.h — a bounded, deadline-aware queue in front of a small pool of threads.
//
// The CSR service (policy.h) runs its CPU work (CSR parse + verify, sign) on one WorkPool and its
// blocking I/O (TokenReviews that miss the cache) on another, so that a burst of callers waits
// its turn instead of being refused merely because there are more callers than cores, and a slow
// API server never stalls signing. What a pool promises:
//  - Memory is bounded: at most `max_queued` jobs wait; past that Submit refuses at once.
//  - Deadline-aware: Submit refuses at once a job that cannot finish before its deadline, judged
//    from the jobs queued ahead of it, the thread count and the measured mean service time (an
//    exponentially weighted moving average of the time each job ran). A job whose deadline
//    passes while it waits is not run: it gets kExpired instead, so the work of a caller that has
//    given up never delays the callers behind it.
//  - Every accepted job is called exactly once, with kRun, kExpired or kCancelled (Stop).
//  - With `run_inline_when_idle`, a job submitted while nothing waits and fewer than `threads`
//    jobs run is run at once on the submitting thread, before Submit returns: no hand-off to a
//    worker (a futex wake and two context switches, about a fifth of the daemon's CPU per
//    certificate under perf). Only for short CPU work: the submitter's thread is held meanwhile.
//    Workers and inline runs together run at most 2 x `threads` jobs at once.
// It does not preempt: a running job runs to its end, and Stop waits for it.
//
// The pool knows nothing of CSRs or gRPC. Time is the steady clock through an injected function,
// so that tests decide what "now" is; with threads == 0 jobs run only when a test calls
// RunQueued, on the test's thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace istioca::ca {

using SteadyTime = std::chrono::steady_clock::time_point;
inline constexpr SteadyTime kNoDeadline = SteadyTime::max();

// Whether a job with `time_left` can be served: the `ahead` jobs queued before it take `threads`
// workers `mean` each, then it takes `mean` itself. With nothing ahead, or nothing measured yet
// (mean == 0): yes, if any time is left at all.
bool DeadlineMeetable(size_t ahead, int threads, std::chrono::nanoseconds mean,
                      std::chrono::nanoseconds time_left);

class WorkPool {
 public:
  enum class Outcome { kRun, kExpired, kCancelled };
  enum class Admission { kAccepted, kQueueFull, kDeadlineUnmeetable, kStopped };
  using Job = std::function<void(Outcome)>;
  struct Options {
    std::string name = "pool";  // thread names ("csr-<name>")
    int threads = 1;            // 0: none; RunQueued runs the jobs (tests)
    size_t max_queued = 1024;
    double ewma_weight = 0.1;  // weight of the newest service-time sample in the mean
    bool run_inline_when_idle = false;
  };

  explicit WorkPool(Options options,
                    std::function<SteadyTime()> now = &std::chrono::steady_clock::now);
  ~WorkPool();  // Stop()
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // kAccepted: `job` was moved into the queue and will be called exactly once. Otherwise `job`
  // is left as it was (the caller answers its call itself) and nothing is queued.
  Admission Submit(SteadyTime deadline, Job&& job);

  // Takes no more jobs; calls every queued job with kCancelled on this thread; waits for the
  // running ones and joins the threads. Idempotent.
  void Stop();

  // threads == 0 only: runs the queued jobs on this thread, oldest first; returns how many were
  // called (run or expired).
  size_t RunQueued();

  size_t queued() const;
  // The most jobs that ever waited at once (tests: the bound held).
  size_t high_water() const;
  // The moving mean of the time a job ran; zero before the first one.
  std::chrono::nanoseconds mean_service_time() const;
  int threads() const { return options_.threads; }
  size_t max_queued() const { return options_.max_queued; }

 private:
  struct Item {
    SteadyTime deadline;
    Job job;
  };
  void Loop();
  // Runs one item taken off the queue (mu_ not held) and records its service time.
  void Serve(Item item);

  const Options options_;
  const std::function<SteadyTime()> now_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  size_t high_water_ = 0;
  int running_ = 0;  // jobs being run, by workers or inline
  std::chrono::nanoseconds mean_{0};
  std::vector<std::thread> threads_;
  std::mutex stop_mu_;  // serialises Stop
};

}  // namespace istioca::ca
