#include "k8s/lease.h"

#include <algorithm>

#include "base/log.h"
#include "k8s/errors.h"

namespace istioca::k8s {

LeaseStep DecideLeaseStep(const std::optional<Lease>& current, TimePoint observed_at,
                          const std::string& identity, TimePoint now) {
  if (!current) return LeaseStep::kCreate;
  if (current->holder == identity) return LeaseStep::kRenew;
  if (current->holder.empty()) return LeaseStep::kTakeOver;  // released
  const auto duration = std::chrono::seconds(std::max(1, current->duration_seconds));
  if (now >= observed_at + duration) return LeaseStep::kTakeOver;
  return LeaseStep::kWait;
}

LeaseElector::LeaseElector(std::shared_ptr<Api> api, LeaseConfig config, const Clock& clock,
                           MetricsRegistry& metrics)
    : api_(std::move(api)),
      config_(std::move(config)),
      clock_(clock),
      leader_gauge_(metrics.GetGauge("istio_ca_leader",
                                     "1 if this replica holds the leader Lease and runs the secret "
                                     "controller, 0 otherwise.",
                                     {{"identity", config_.identity}})) {}

LeaseElector::~LeaseElector() { Stop(); }

void LeaseElector::SetLeading(bool leading) {
  bool was = leading_.exchange(leading);
  leader_gauge_.Set(leading ? 1 : 0);
  if (was != leading) {
    Logger("leader")->info("leadership {} identity={} lease={}/{}", leading ? "acquired" : "lost",
                           config_.identity, config_.ns, config_.name);
    if (on_change_) on_change_(leading);
  }
}

bool LeaseElector::TryAcquireOrRenew() {
  const TimePoint now = clock_.Now();
  auto got = GetLease(*api_, config_.ns, config_.name);
  std::optional<Lease> current;
  if (got.ok()) {
    current = *got;
  } else if (!IsNotFound(got.status())) {
    return false;  // unknown: the caller's renew deadline decides
  }
  if (current) {
    std::string seen =
        current->holder + "@" + (current->renew_time ? FormatMicroTime(*current->renew_time) : "");
    if (seen != observed_key_) {
      observed_key_ = seen;
      observed_at_ = now;
    }
  }
  const int duration_s = static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(config_.lease_duration).count());
  // A Conflict or AlreadyExists means another replica wrote first: not retried here; the next
  // round reads again and decides again.
  switch (DecideLeaseStep(current, observed_at_, config_.identity, now)) {
    case LeaseStep::kCreate: {
      Lease l;
      l.meta.name = config_.name;
      l.meta.ns = config_.ns;
      l.holder = config_.identity;
      l.duration_seconds = duration_s;
      l.acquire_time = l.renew_time = now;
      return CreateLease(*api_, l).ok();
    }
    case LeaseStep::kRenew: {
      Lease l = *current;
      l.renew_time = now;
      l.duration_seconds = duration_s;
      return UpdateLease(*api_, l).ok();
    }
    case LeaseStep::kTakeOver: {
      Lease l = *current;
      l.holder = config_.identity;
      l.duration_seconds = duration_s;
      l.acquire_time = l.renew_time = now;
      l.transitions += 1;
      return UpdateLease(*api_, l).ok();
    }
    case LeaseStep::kWait: return false;
  }
  return false;
}

void LeaseElector::Round() {
  const TimePoint now = clock_.Now();
  if (TryAcquireOrRenew()) {
    last_renew_ = now;
    SetLeading(true);
  } else if (leading_ && now - last_renew_ >= config_.renew_deadline) {
    // Could not renew in time: stop acting as leader before the lease can pass to another.
    SetLeading(false);
  }
  // Otherwise, still within the renew deadline: keep leading (or keep waiting), try again soon.
}

Status LeaseElector::Start(std::function<void(bool leading)> on_change) {
  on_change_ = std::move(on_change);
  leader_gauge_.Set(0);
  thread_ = std::thread([this] { Loop(); });
  return OkStatus();
}

void LeaseElector::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    Round();
    lock.lock();
    cv_.wait_for(lock, config_.retry_period, [this] { return stopping_; });
  }
}

void LeaseElector::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (leading_) {
    // Release, so a standby takes over at once instead of after the lease duration.
    auto got = GetLease(*api_, config_.ns, config_.name);
    if (got.ok() && got->holder == config_.identity) {
      Lease l = *got;
      l.holder.clear();
      l.duration_seconds = 1;
      (void)UpdateLease(*api_, l);
    }
    SetLeading(false);
  }
}

}  // namespace istioca::k8s
