#include "ca/kube/sync_gate.h"

namespace istioca::ca {

void SyncGate::OnOpen(std::function<void()> replay) {
  std::unique_lock<std::mutex> lock(mu_);
  if (waiting_ <= 0) {
    lock.unlock();
    replay();
    return;
  }
  replays_.push_back(std::move(replay));
}

void SyncGate::MemberSynced() {
  std::vector<std::function<void()>> run;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (--waiting_ == 0) run.swap(replays_);
  }
  for (auto& fn : run) fn();
}

bool SyncGate::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_ <= 0;
}

}  // namespace istioca::ca
