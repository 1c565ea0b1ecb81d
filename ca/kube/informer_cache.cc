#include "ca/kube/informer_cache.h"

#include <algorithm>
#include <cstdlib>

namespace istioca::ca {

uint64_t ParseResourceVersion(const std::string& rv) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(rv.c_str(), &end, 10);
  return end != nullptr && *end == '\0' ? v : 0;
}

struct InformerCache::Handler : k8s::InformerHandler {
  InformerCache* self;
  explicit Handler(InformerCache* s) : self(s) {}
  void OnUpsert(const k8s::Json& o) override { self->OnUpsert(o); }
  void OnDelete(const std::string& ns, const std::string& name, const k8s::Json&) override {
    self->OnDelete(ns, name);
  }
  void OnSynced() override { self->ReportSynced(); }
  void OnResync() override { self->OnInformersResync(); }
};

InformerCache::InformerCache(std::shared_ptr<k8s::Api> api, std::vector<std::string> namespaces,
                             k8s::Resource resource, std::string field_selector,
                             KubeInformerTuning tuning, std::shared_ptr<SyncGate> gate)
    : api_(std::move(api)),
      namespaces_(std::move(namespaces)),
      resource_(std::move(resource)),
      field_selector_(std::move(field_selector)),
      tuning_(tuning),
      gate_(std::move(gate)) {}

InformerCache::~InformerCache() { StopInformers(); }

void InformerCache::SetChangeHandler(std::function<void(const ServiceAccountKey&)> on_change) {
  on_change_ = std::move(on_change);
}

Status InformerCache::StartInformers() {
  const std::vector<std::string> scopes =
      namespaces_.empty() ? std::vector<std::string>{""} : namespaces_;
  for (const std::string& ns : scopes) {
    k8s::InformerOptions o;
    o.resource = resource_;
    o.ns = ns;
    o.field_selector = field_selector_;
    o.page_size = tuning_.page_size;
    o.resync = tuning_.resync;
    o.min_backoff = tuning_.min_backoff;
    o.max_backoff = tuning_.max_backoff;
    o.clock = tuning_.clock;
    handlers_.push_back(std::make_unique<Handler>(this));
    informers_.push_back(std::make_unique<k8s::Informer>(*api_, o, *handlers_.back()));
  }
  for (auto& informer : informers_) {
    k8s::Informer* p = informer.get();
    threads_.emplace_back([this, p] { p->Run(cancel_); });
  }
  return OkStatus();
}

void InformerCache::StopInformers() {
  cancel_.Cancel();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

bool InformerCache::InformersSynced() const {
  if (informers_.empty()) return false;
  for (const auto& i : informers_) {
    if (!i->synced()) return false;
  }
  return true;
}

bool InformerCache::InScope(const std::string& ns) const {
  return namespaces_.empty() ||
         std::find(namespaces_.begin(), namespaces_.end(), ns) != namespaces_.end();
}

void InformerCache::Notify(const ServiceAccountKey& key) {
  if (on_change_ && (!gate_ || gate_->open())) on_change_(key);
}

void InformerCache::ReportSynced() {
  if (InformersSynced()) OnInformersSynced();
  if (!gate_ || !InformersSynced() || gate_reported_.exchange(true)) return;
  gate_->OnOpen([this] {
    for (const auto& key : CachedKeys()) Notify(key);
  });
  gate_->MemberSynced();
}

}  // namespace istioca::ca
