#include "ca/kube/root_cert_publisher.h"

#include <algorithm>

#include "base/backoff.h"
#include "base/log.h"
#include "ca/trust/distribution.h"
#include "k8s/errors.h"
#include "k8s/objects.h"

namespace istioca::ca {
namespace {

std::map<std::string, std::string> OurLabels() {
  return {{trust::kRootCertConfigMapLabel, trust::kRootCertConfigMapLabelValue}};
}

}  // namespace

// One informer-backed view (ConfigMaps named istio-ca-root-cert, or Namespaces) feeding the
// publisher. Made anew by every Start(): an InformerCache's cancellation is for good.
class KubeRootCertPublisher::Watch final : public InformerCache {
 public:
  enum class What { kConfigMaps, kNamespaces };
  Watch(KubeRootCertPublisher& owner, What what, std::vector<std::string> scope,
        const KubeInformerTuning& tuning)
      : InformerCache(owner.api_, std::move(scope),
                      what == What::kConfigMaps ? k8s::kConfigMaps : k8s::kNamespaces,
                      what == What::kConfigMaps
                          ? std::string("metadata.name=") + trust::kRootCertConfigMapName
                          : std::string(),
                      tuning, nullptr),
        owner_(owner),
        what_(what) {}
  ~Watch() override { StopInformers(); }
  using InformerCache::InformersSynced;
  using InformerCache::StartInformers;
  using InformerCache::StopInformers;

 private:
  void OnUpsert(const k8s::Json& object) override {
    if (what_ == What::kConfigMaps) {
      owner_.OnConfigMap(object);
    } else {
      owner_.OnNamespace(object);
    }
  }
  void OnDelete(const std::string& ns, const std::string& name) override {
    if (what_ == What::kConfigMaps) {
      owner_.OnConfigMapDeleted(ns);
    } else {
      owner_.OnNamespaceDeleted(name);
    }
  }
  std::vector<ServiceAccountKey> CachedKeys() const override { return {}; }
  void OnInformersSynced() override { owner_.OnWatchSynced(); }
  void OnInformersResync() override {
    std::lock_guard<std::mutex> lock(owner_.mu_);
    owner_.EnqueueAllLocked();
  }

  KubeRootCertPublisher& owner_;
  const What what_;
};

KubeRootCertPublisher::KubeRootCertPublisher(std::shared_ptr<k8s::Api> api,
                                             std::vector<std::string> namespaces,
                                             const Clock& clock, RootCertPublisherTuning tuning)
    : api_(std::move(api)), listed_(std::move(namespaces)), clock_(clock), tuning_(tuning) {
  for (const auto& ns : listed_) namespaces_[ns] = NamespaceState{};
}

KubeRootCertPublisher::~KubeRootCertPublisher() { Stop(); }

void KubeRootCertPublisher::Publish(const std::string& bundle_pem, uint64_t generation) {
  std::lock_guard<std::mutex> lock(mu_);
  if (generation == generation_ && bundle_pem == bundle_) return;
  // The same bundle under a new generation changes nothing on the server: keep the time of
  // the write that put it there.
  if (bundle_pem != bundle_) last_write_.reset();
  bundle_ = bundle_pem;
  generation_ = generation;
  // A namespace that refused the last bundle may exist by now: try each once more.
  for (auto& [ns, state] : namespaces_) state.gone = false;
  EnqueueAllLocked();
}

BundleProgress KubeRootCertPublisher::Progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  BundleProgress p;
  p.generation = generation_;
  p.synced = synced_;
  p.last_write = last_write_;
  for (const auto& [ns, state] : namespaces_) {
    if (!state.active || state.gone) continue;
    ++p.total;
    auto it = config_map_state_.find(ns);
    if (!bundle_.empty() && it != config_map_state_.end() && it->second.root == bundle_) {
      ++p.updated;
    }
  }
  return p;
}

Status KubeRootCertPublisher::Start() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (running_) return OkStatus();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
    synced_ = false;
    // What was seen before a Stop may be stale by now: the informers list it again.
    config_map_state_.clear();
    if (listed_.empty()) namespaces_.clear();
    for (auto& [ns, state] : namespaces_) state.gone = false;
    queue_.clear();
    queued_.clear();
  }
  config_maps_ =
      std::make_unique<Watch>(*this, Watch::What::kConfigMaps, listed_, tuning_.informers);
  if (listed_.empty()) {
    namespaces_watch_ = std::make_unique<Watch>(*this, Watch::What::kNamespaces,
                                                std::vector<std::string>{}, tuning_.informers);
  }
  // Both exist before either informer runs: OnWatchSynced looks at both.
  RETURN_IF_ERROR(config_maps_->StartInformers());
  if (namespaces_watch_) RETURN_IF_ERROR(namespaces_watch_->StartInformers());
  worker_ = std::thread([this] { Run(); });
  running_ = true;
  return OkStatus();
}

void KubeRootCertPublisher::Stop() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (!running_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  // The informer threads call back into this object: end them before the worker and before
  // the views go away.
  config_maps_->StopInformers();
  if (namespaces_watch_) namespaces_watch_->StopInformers();
  if (worker_.joinable()) worker_.join();
  config_maps_.reset();
  namespaces_watch_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    synced_ = false;
  }
  running_ = false;
}

bool KubeRootCertPublisher::InScopeLocked(const std::string& ns) const {
  auto it = namespaces_.find(ns);
  return it != namespaces_.end() && it->second.active && !it->second.gone;
}

void KubeRootCertPublisher::EnqueueLocked(const std::string& ns) {
  if (queued_.insert(ns).second) queue_.push_back(ns);
  cv_.notify_all();
}

void KubeRootCertPublisher::EnqueueAllLocked() {
  for (const auto& [ns, state] : namespaces_) EnqueueLocked(ns);
}

void KubeRootCertPublisher::Remember(const k8s::Json& object) {
  k8s::ConfigMap c = k8s::ConfigMapFromJson(object);
  if (c.meta.name != trust::kRootCertConfigMapName) return;
  const uint64_t rv = ParseResourceVersion(c.meta.resource_version);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = config_map_state_.find(c.meta.ns);
  if (it != config_map_state_.end() && rv != 0 && it->second.rv >= rv) return;  // older news
  ConfigMapState& state = config_map_state_[c.meta.ns];
  state.rv = rv;
  auto root = c.data.find(trust::kRootCertConfigMapKey);
  state.root = root == c.data.end() ? std::string() : root->second;
  // The namespace exists after all.
  if (auto ns = namespaces_.find(c.meta.ns); ns != namespaces_.end()) ns->second.gone = false;
  if (!bundle_.empty() && state.root != bundle_) EnqueueLocked(c.meta.ns);
}

void KubeRootCertPublisher::OnConfigMap(const k8s::Json& object) { Remember(object); }

void KubeRootCertPublisher::OnConfigMapDeleted(const std::string& ns) {
  std::lock_guard<std::mutex> lock(mu_);
  config_map_state_.erase(ns);
  EnqueueLocked(ns);  // Istio re-creates it on its delete event
}

void KubeRootCertPublisher::OnNamespace(const k8s::Json& object) {
  k8s::Namespace n = k8s::NamespaceFromJson(object);
  std::lock_guard<std::mutex> lock(mu_);
  NamespaceState& state = namespaces_[n.meta.name];
  state.active = !n.terminating();
  state.gone = false;
  if (state.active) EnqueueLocked(n.meta.name);
}

void KubeRootCertPublisher::OnNamespaceDeleted(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  namespaces_.erase(name);
}

void KubeRootCertPublisher::OnWatchSynced() {
  // Both views exist while any informer runs (made before, destroyed after, in Start/Stop).
  const bool all = config_maps_->InformersSynced() &&
                   (!namespaces_watch_ || namespaces_watch_->InformersSynced());
  if (!all) return;
  std::lock_guard<std::mutex> lock(mu_);
  synced_ = true;
  EnqueueAllLocked();
}

void KubeRootCertPublisher::Run() {
  auto log = Logger("trust");
  Backoff backoff(tuning_.min_backoff, tuning_.max_backoff, k8s::kBackoffJitter);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || (synced_ && !bundle_.empty() && !queue_.empty()); });
    if (stopping_) return;
    std::string ns = queue_.front();
    queue_.pop_front();
    queued_.erase(ns);
    lock.unlock();
    Status s = SyncOne(ns);
    lock.lock();
    if (s.ok()) {
      backoff.Reset();
      continue;
    }
    auto delay = backoff.Next();
    log->warn("root cert configmap not written ns={} retry_in_ms={} error={}", ns,
              std::chrono::duration_cast<std::chrono::milliseconds>(delay).count(), s.ToString());
    EnqueueLocked(ns);
    cv_.wait_for(lock, delay, [&] { return stopping_; });
  }
}

Status KubeRootCertPublisher::SyncOne(const std::string& ns) {
  std::string bundle;
  uint64_t generation = 0;
  bool exists = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (bundle_.empty() || !InScopeLocked(ns)) return OkStatus();
    auto it = config_map_state_.find(ns);
    exists = it != config_map_state_.end();
    if (exists && it->second.root == bundle_) return OkStatus();  // nothing to write
    bundle = bundle_;
    generation = generation_;
  }
  auto log = Logger("trust");
  auto wrote = [&](const k8s::Json& object, const char* op) {
    Remember(object);
    std::lock_guard<std::mutex> lock(mu_);
    if (bundle == bundle_) last_write_ = clock_.Now();
    log->info("root cert configmap {} ns={} name={} generation={}", op, ns,
              trust::kRootCertConfigMapName, generation);
  };

  if (!exists) {
    const trust::RootCertConfigMap want = trust::BuildRootCertConfigMap(ns, bundle);
    k8s::ConfigMap c;
    c.meta.name = want.name;
    c.meta.ns = want.namespace_name;
    c.meta.labels = want.labels;
    c.data = want.data;
    ++writes_;
    auto created = k8s::CreateConfigMap(*api_, c);
    if (created.ok()) {
      wrote(k8s::ConfigMapToJson(*created), "created");
      return OkStatus();
    }
    const Status& err = created.status();
    if (k8s::IsNotFound(err) || k8s::IsNamespaceTerminating(err)) {
      // Istio ignores NotFound on create: the namespace is gone (or going).
      log->info("root cert configmap not created ns={} reason=namespace-{}", ns,
                k8s::IsNotFound(err) ? "missing" : "terminating");
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = namespaces_.find(ns); it != namespaces_.end()) it->second.gone = true;
      return OkStatus();
    }
    if (!k8s::IsAlreadyExists(err)) return err;
    // Our view is behind: merge into the one that is there.
  }

  bool changed = false;
  auto updated = k8s::UpdateWithRetry(
      *api_, k8s::kConfigMaps, ns, trust::kRootCertConfigMapName,
      [&](k8s::Json& object) -> Result<bool> {
        changed = k8s::SetConfigMapData(object, {{trust::kRootCertConfigMapKey, bundle}});
        if (!changed) return false;
        k8s::SetLabels(object, OurLabels());
        ++writes_;
        return true;
      });
  if (!updated.ok()) {
    if (k8s::IsNotFound(updated.status())) {
      // Deleted meanwhile: its delete event brings it back here for a create.
      std::lock_guard<std::mutex> lock(mu_);
      config_map_state_.erase(ns);
    }
    return updated.status();
  }
  if (changed) {
    wrote(*updated, "updated");
  } else {
    Remember(*updated);
  }
  return OkStatus();
}

}  // namespace istioca::ca
