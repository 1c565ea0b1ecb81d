// ca/kube/sync_gate.h — holds back the Kubernetes backends' change notifications until every
// backend sharing the gate has completed its first list, then replays them all at once.
//
// The controller's first pass then sees complete caches instead of thousands of "not synced
// yet" failures (Istio 1.1+ likewise waited for the secret cache before starting the
// service-account informer, PR #10067).
#pragma once

#include <functional>
#include <mutex>
#include <vector>

namespace istioca::ca {

class SyncGate {
 public:
  explicit SyncGate(int members) : waiting_(members) {}
  // Registers what to replay once all members synced; runs it at once if they already have.
  void OnOpen(std::function<void()> replay);
  // A member's first complete list.
  void MemberSynced();
  bool open() const;

 private:
  mutable std::mutex mu_;
  int waiting_;
  std::vector<std::function<void()>> replays_;
};

}  // namespace istioca::ca
