// k8s/lease.h — leader election on a coordination.k8s.io/v1 Lease: a pure decision over the
// Lease as read, and an elector that renews it on a thread and says when leadership changes.
// Knows Leases, not what the leader does (ca/kube/leader_elector.h runs the controller on it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/metrics.h"
#include "base/status.h"
#include "base/time.h"
#include "k8s/api.h"
#include "k8s/objects.h"

namespace istioca::k8s {

struct LeaseConfig {
  std::string ns = "istio-system";
  std::string name = "istio-ca-leader";
  std::string identity;  // unique per replica
  Duration lease_duration = std::chrono::seconds(15);
  Duration renew_deadline = std::chrono::seconds(10);
  Duration retry_period = std::chrono::seconds(2);
};

enum class LeaseStep { kCreate, kRenew, kTakeOver, kWait };

// Pure decision over the lease as read: `observed_at` is when *we* first saw the lease's
// current renewTime/holder (our clock), so that a skewed clock on another replica cannot make
// us think a live lease expired (client-go does the same).
LeaseStep DecideLeaseStep(const std::optional<Lease>& current, TimePoint observed_at,
                          const std::string& identity, TimePoint now);

// Renews (or waits for, then takes) the Lease every retry_period on its own thread. All times
// come from `clock`; only the pause between rounds is real time. Not leading any more once a
// renewal has failed for renew_deadline. Stop() releases a held Lease so a standby takes over
// at once.
class LeaseElector {
 public:
  LeaseElector(std::shared_ptr<Api> api, LeaseConfig config, const Clock& clock,
               MetricsRegistry& metrics);
  ~LeaseElector();
  LeaseElector(const LeaseElector&) = delete;
  LeaseElector& operator=(const LeaseElector&) = delete;

  // on_change(true) when leadership is acquired, on_change(false) when lost; called from the
  // elector's thread (or from Stop()).
  Status Start(std::function<void(bool leading)> on_change);
  void Stop();
  bool leading() const { return leading_.load(); }
  // One round: read, decide, write. Returns whether we hold the Lease afterwards. Exposed for
  // tests, which drive it with a FakeClock.
  bool TryAcquireOrRenew();
  // One round of the loop: TryAcquireOrRenew, then leading or not by the renew deadline.
  // Exposed for tests (the thread calls it every retry_period).
  void Round();

 private:
  void Loop();
  void SetLeading(bool leading);

  std::shared_ptr<Api> api_;
  LeaseConfig config_;
  const Clock& clock_;
  Gauge& leader_gauge_;
  std::function<void(bool)> on_change_;
  std::atomic<bool> leading_{false};
  TimePoint last_renew_{};
  std::string observed_key_;  // holder + renewTime last seen
  TimePoint observed_at_{};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace istioca::k8s
