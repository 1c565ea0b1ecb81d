#include "ca/grpc/admission.h"

#include <pthread.h>

#include <algorithm>

namespace istioca::ca {

bool DeadlineMeetable(size_t ahead, int threads, std::chrono::nanoseconds mean,
                      std::chrono::nanoseconds time_left) {
  if (time_left <= std::chrono::nanoseconds::zero()) return false;
  // A job that would start at once is never refused on an estimate: that also lets the mean
  // come back down after an outlier (a TokenReview that hung), since only jobs that run measure.
  if (ahead == 0 || mean <= std::chrono::nanoseconds::zero()) return true;
  // In double: a huge queue times a long mean must not overflow.
  const double rounds = static_cast<double>(ahead) / std::max(1, threads) + 1.0;
  return rounds * static_cast<double>(mean.count()) <= static_cast<double>(time_left.count());
}

WorkPool::WorkPool(Options options, std::function<SteadyTime()> now)
    : options_(std::move(options)), now_(std::move(now)) {
  threads_.reserve(static_cast<size_t>(std::max(0, options_.threads)));
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] {
      // Linux thread names are at most 15 characters.
      const std::string name = ("csr-" + options_.name).substr(0, 15);
      pthread_setname_np(pthread_self(), name.c_str());
      Loop();
    });
  }
}

WorkPool::~WorkPool() { Stop(); }

WorkPool::Admission WorkPool::Submit(SteadyTime deadline, Job&& job) {
  // Read before the lock: the clock may be slow (a fake takes its own lock).
  const SteadyTime now = deadline == kNoDeadline ? SteadyTime{} : now_();
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return Admission::kStopped;
  if (queue_.size() >= options_.max_queued) return Admission::kQueueFull;
  if (deadline != kNoDeadline &&
      !DeadlineMeetable(queue_.size(), options_.threads, mean_,
                        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now))) {
    return Admission::kDeadlineUnmeetable;
  }
  if (options_.run_inline_when_idle && queue_.empty() && running_ < options_.threads) {
    ++running_;
    lock.unlock();
    Serve(Item{deadline, std::move(job)});
    lock.lock();
    --running_;
    return Admission::kAccepted;
  }
  queue_.push_back(Item{deadline, std::move(job)});
  high_water_ = std::max(high_water_, queue_.size());
  cv_.notify_one();
  return Admission::kAccepted;
}

void WorkPool::Serve(Item item) {
  const SteadyTime start = now_();
  if (item.deadline != kNoDeadline && start >= item.deadline) {
    item.job(Outcome::kExpired);
    return;
  }
  item.job(Outcome::kRun);
  const auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(now_() - start);
  std::lock_guard<std::mutex> lock(mu_);
  if (mean_.count() == 0) {
    mean_ = std::max(took, std::chrono::nanoseconds(1));
  } else {
    const double next = static_cast<double>(mean_.count()) +
                        options_.ewma_weight * static_cast<double>((took - mean_).count());
    mean_ = std::chrono::nanoseconds(std::max<int64_t>(1, static_cast<int64_t>(next)));
  }
}

void WorkPool::Loop() {
  while (true) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and Stop took what was queued
      item = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    Serve(std::move(item));
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
  }
}

size_t WorkPool::RunQueued() {
  size_t ran = 0;
  while (true) {
    Item item;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) return ran;
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    Serve(std::move(item));
    ++ran;
  }
}

void WorkPool::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  std::deque<Item> cancelled;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cancelled.swap(queue_);
  }
  cv_.notify_all();
  for (Item& item : cancelled) item.job(Outcome::kCancelled);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

size_t WorkPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

size_t WorkPool::high_water() const {
  std::lock_guard<std::mutex> lock(mu_);
  return high_water_;
}

std::chrono::nanoseconds WorkPool::mean_service_time() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mean_;
}

}  // namespace istioca::ca
