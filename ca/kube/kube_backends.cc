#include "ca/kube/kube_backends.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "base/log.h"
#include "k8s/errors.h"
#include "k8s/http_api.h"

namespace istioca::ca {
namespace {

uint64_t ParseRv(const std::string& rv) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(rv.c_str(), &end, 10);
  return end != nullptr && *end == '\0' ? v : 0;
}

// SHA-256 of a workload key.pem: what the cache keeps instead of the key. Empty if hashing
// failed (never equal to anything, so an update is then written).
std::string KeyDigest(const std::string& pem) {
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  unsigned int len = 0;
  if (EVP_Digest(pem.data(), pem.size(), reinterpret_cast<unsigned char*>(digest.data()), &len,
                 EVP_sha256(), nullptr) != 1 ||
      len != digest.size()) {
    return "";
  }
  return digest;
}

std::optional<ServiceAccountKey> KeyOfSecretName(const std::string& ns, const std::string& name) {
  const std::string prefix = kSecretNamePrefix;
  if (name.size() <= prefix.size() || name.rfind(prefix, 0) != 0) return std::nullopt;
  return ServiceAccountKey{ns, name.substr(prefix.size())};
}

// Runs one informer per namespace (or one over all) on its own thread.
template <class H>
void StartInformers(std::shared_ptr<k8s::Api>& api, const std::vector<std::string>& namespaces,
                    const k8s::Resource& resource, const std::string& selector,
                    const KubeInformerTuning& tuning,
                    std::function<std::unique_ptr<H>()> make_handler,
                    std::vector<std::unique_ptr<H>>& handlers,
                    std::vector<std::unique_ptr<k8s::Informer>>& informers,
                    std::vector<std::thread>& threads, k8s::Cancellation& cancel) {
  std::vector<std::string> scopes = namespaces.empty() ? std::vector<std::string>{""} : namespaces;
  for (const std::string& ns : scopes) {
    k8s::InformerOptions o;
    o.resource = resource;
    o.ns = ns;
    o.field_selector = selector;
    o.page_size = tuning.page_size;
    o.resync = tuning.resync;
    o.min_backoff = tuning.min_backoff;
    o.max_backoff = tuning.max_backoff;
    handlers.push_back(make_handler());
    informers.push_back(std::make_unique<k8s::Informer>(*api, o, *handlers.back()));
  }
  for (auto& inf : informers) {
    k8s::Informer* p = inf.get();
    threads.emplace_back([p, &cancel] { p->Run(cancel); });
  }
}

}  // namespace

// ---- Sync gate -------------------------------------------------------------------------

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

// ---- Service accounts ------------------------------------------------------------------

struct KubeServiceAccountSource::Handler : k8s::InformerHandler {
  KubeServiceAccountSource* self;
  explicit Handler(KubeServiceAccountSource* s) : self(s) {}
  void OnUpsert(const k8s::Json& o) override {
    k8s::ObjectMeta m = k8s::MetaFromJson(o);
    ServiceAccountKey key{m.ns, m.name};
    bool added;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      added = self->present_.insert(key).second;
    }
    // Only existence matters to the controller: label changes are not news.
    if (added) self->Notify(key);
  }
  void OnDelete(const std::string& ns, const std::string& name, const k8s::Json&) override {
    ServiceAccountKey key{ns, name};
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->present_.erase(key);
    }
    self->Notify(key);
  }
  void OnSynced() override { self->ReportSynced(); }
};

void KubeServiceAccountSource::Notify(const ServiceAccountKey& key) {
  if (on_change_ && (!gate_ || gate_->open())) on_change_(key);
}

void KubeServiceAccountSource::ReportSynced() {
  if (!gate_ || !HasSynced() || gate_reported_.exchange(true)) return;
  gate_->OnOpen([this] {
    std::vector<ServiceAccountKey> keys;
    {
      std::lock_guard<std::mutex> lock(mu_);
      keys.assign(present_.begin(), present_.end());
    }
    for (const auto& key : keys) Notify(key);
  });
  gate_->MemberSynced();
}

KubeServiceAccountSource::KubeServiceAccountSource(std::shared_ptr<k8s::Api> api,
                                                   std::vector<std::string> namespaces,
                                                   KubeInformerTuning tuning,
                                                   std::shared_ptr<SyncGate> gate)
    : api_(std::move(api)),
      namespaces_(std::move(namespaces)),
      tuning_(tuning),
      gate_(std::move(gate)) {}

KubeServiceAccountSource::~KubeServiceAccountSource() { Stop(); }

void KubeServiceAccountSource::SetHandler(std::function<void(const ServiceAccountKey&)> on_change) {
  on_change_ = std::move(on_change);
}

Status KubeServiceAccountSource::Start() {
  StartInformers<Handler>(
      api_, namespaces_, k8s::kServiceAccounts, "", tuning_,
      [this] { return std::make_unique<Handler>(this); }, handlers_, informers_, threads_, cancel_);
  return OkStatus();
}

void KubeServiceAccountSource::Stop() {
  cancel_.Cancel();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

bool KubeServiceAccountSource::HasSynced() const {
  if (informers_.empty()) return false;
  for (const auto& i : informers_) {
    if (!i->synced()) return false;
  }
  return true;
}

Result<std::vector<ServiceAccountKey>> KubeServiceAccountSource::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::vector<ServiceAccountKey>(present_.begin(), present_.end());
}

Result<bool> KubeServiceAccountSource::Exists(const ServiceAccountKey& key) const {
  bool synced = HasSynced();
  std::lock_guard<std::mutex> lock(mu_);
  if (present_.contains(key)) return true;
  // Absence means something only once the first list is complete.
  if (!synced) return Unavailable("service account cache not synced yet");
  return false;
}

// ---- Workload secrets ------------------------------------------------------------------

struct KubeSecretStore::Handler : k8s::InformerHandler {
  KubeSecretStore* self;
  explicit Handler(KubeSecretStore* s) : self(s) {}
  void OnUpsert(const k8s::Json& o) override {
    auto s = k8s::SecretFromJson(o);
    if (!s.ok()) {
      // Undecodable data: keep an empty entry so the controller sees an unparsable secret
      // and refreshes it.
      k8s::Secret empty;
      empty.meta = k8s::MetaFromJson(o);
      s = empty;
    }
    auto key = KeyOfSecretName(s->meta.ns, s->meta.name);
    if (!key) return;
    if (self->Remember(*s)) self->Notify(*key);
  }
  void OnDelete(const std::string& ns, const std::string& name, const k8s::Json& last) override {
    auto key = KeyOfSecretName(ns, name);
    if (!key) return;
    self->Forget(ns, name, 0);
    self->Notify(*key);
  }
  void OnSynced() override { self->ReportSynced(); }
};

void KubeSecretStore::Notify(const ServiceAccountKey& key) {
  if (on_change_ && (!gate_ || gate_->open())) on_change_(key);
}

void KubeSecretStore::ReportSynced() {
  if (!gate_ || !HasSynced() || gate_reported_.exchange(true)) return;
  gate_->OnOpen([this] {
    std::vector<ServiceAccountKey> keys;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [key, c] : cache_) keys.push_back(key);
    }
    for (const auto& key : keys) Notify(key);
  });
  gate_->MemberSynced();
}

KubeSecretStore::KubeSecretStore(std::shared_ptr<k8s::Api> api, std::vector<std::string> namespaces,
                                 KubeInformerTuning tuning, std::shared_ptr<SyncGate> gate)
    : api_(std::move(api)),
      namespaces_(std::move(namespaces)),
      tuning_(tuning),
      gate_(std::move(gate)) {}

KubeSecretStore::~KubeSecretStore() { Stop(); }

void KubeSecretStore::SetHandler(std::function<void(const ServiceAccountKey&)> on_change) {
  on_change_ = std::move(on_change);
}

Status KubeSecretStore::Start() {
  StartInformers<Handler>(
      api_, namespaces_, k8s::kSecrets, k8s::kIstioSecretSelector, tuning_,
      [this] { return std::make_unique<Handler>(this); }, handlers_, informers_, threads_, cancel_);
  return OkStatus();
}

void KubeSecretStore::Stop() {
  cancel_.Cancel();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

bool KubeSecretStore::HasSynced() const {
  if (informers_.empty()) return false;
  for (const auto& i : informers_) {
    if (!i->synced()) return false;
  }
  return true;
}

bool KubeSecretStore::CacheContains(const std::string& bytes) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, c] : cache_) {
    for (const std::string* field : {&c.rv_text, &c.chain, &c.key_digest, c.root.get()}) {
      if (field != nullptr && field->find(bytes) != std::string::npos) return true;
    }
    for (const auto* m : {&c.labels, &c.annotations}) {
      for (const auto& [k, v] : *m) {
        if (k.find(bytes) != std::string::npos || v.find(bytes) != std::string::npos) return true;
      }
    }
  }
  return false;
}

size_t KubeSecretStore::cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.size();
}

bool KubeSecretStore::InScope(const std::string& ns) const {
  return namespaces_.empty() ||
         std::find(namespaces_.begin(), namespaces_.end(), ns) != namespaces_.end();
}

bool KubeSecretStore::Remember(const k8s::Secret& s) {
  auto key = KeyOfSecretName(s.meta.ns, s.meta.name);
  if (!key || !InScope(s.meta.ns)) return false;
  uint64_t rv = ParseRv(s.meta.resource_version);
  auto get = [&](const char* k) {
    auto it = s.data.find(k);
    return it == s.data.end() ? std::string() : it->second;
  };
  std::string root = get(kRootCertKey);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(*key);
  if (it != cache_.end() && rv != 0 && it->second.rv >= rv) return false;  // older news
  if (!last_root_ || *last_root_ != root) last_root_ = std::make_shared<const std::string>(root);
  Cached& c = cache_[*key];
  c.rv = rv;
  c.rv_text = s.meta.resource_version;
  c.chain = get(kCertChainKey);
  auto key_pem = s.data.find(kPrivateKeyKey);
  c.key_digest = KeyDigest(key_pem == s.data.end() ? std::string() : key_pem->second);
  c.key_looks_valid = key_pem != s.data.end() && LooksLikePrivateKeyPem(key_pem->second);
  c.root = last_root_;
  c.labels = s.meta.labels;
  c.annotations = s.meta.annotations;
  return true;
}

void KubeSecretStore::Forget(const std::string& ns, const std::string& name, uint64_t) {
  auto key = KeyOfSecretName(ns, name);
  if (!key) return;
  std::lock_guard<std::mutex> lock(mu_);
  cache_.erase(*key);
}

Result<std::vector<ServiceAccountKey>> KubeSecretStore::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ServiceAccountKey> out;
  out.reserve(cache_.size());
  for (const auto& [key, c] : cache_) out.push_back(key);
  return out;
}

Result<WorkloadSecret> KubeSecretStore::Get(const ServiceAccountKey& key) const {
  if (!HasSynced()) {
    // Before the first list completes the cache may miss secrets that exist: ask the API.
    auto s = k8s::GetSecret(*api_, key.ns, key.SecretName());
    if (!s.ok()) return s.status();
    if (s->type != kWorkloadSecretType)
      return NotFound("secret is not of type " + std::string(kWorkloadSecretType));
    auto get = [&](const char* k) {
      auto it = s->data.find(k);
      return it == s->data.end() ? std::string() : it->second;
    };
    return WorkloadSecret{get(kCertChainKey), get(kPrivateKeyKey), get(kRootCertKey),
                          s->meta.resource_version};
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end())
    return NotFound("secret " + key.ns + "/" + key.SecretName() + " not found");
  const Cached& c = it->second;
  WorkloadSecret out{c.chain, "", c.root ? *c.root : std::string(), c.rv_text};
  out.stored_key_looks_valid = c.key_looks_valid;
  return out;
}

k8s::Secret KubeSecretStore::BuildSecret(const ServiceAccountKey& key,
                                         const WorkloadSecret& secret) {
  k8s::Secret s;
  s.meta.name = key.SecretName();
  s.meta.ns = key.ns;
  s.meta.annotations[kServiceAccountAnnotation] = key.name;
  s.type = kWorkloadSecretType;
  s.data[kCertChainKey] = secret.cert_chain_pem;
  s.data[kPrivateKeyKey] = secret.key_pem;
  s.data[kRootCertKey] = secret.root_cert_pem;
  return s;
}

Status KubeSecretStore::Create(const ServiceAccountKey& key, const WorkloadSecret& secret) {
  ++writes_;
  auto created = k8s::CreateSecret(*api_, BuildSecret(key, secret));
  if (created.ok()) {
    Remember(*created);
    return OkStatus();
  }
  if (k8s::IsAlreadyExists(created.status())) {
    // Our cache is behind (or another replica won): read it so the controller's next look
    // sees what is there instead of trying to create again.
    auto current = k8s::GetSecret(*api_, key.ns, key.SecretName());
    if (current.ok()) Remember(*current);
  }
  return created.status();
}

Status KubeSecretStore::Update(const ServiceAccountKey& key, const WorkloadSecret& secret) {
  k8s::Secret s = BuildSecret(key, secret);
  s.meta.resource_version = secret.version;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      const Cached& c = it->second;
      if (c.rv_text == secret.version && c.chain == secret.cert_chain_pem &&
          !c.key_digest.empty() && c.key_digest == KeyDigest(secret.key_pem) && c.root &&
          *c.root == secret.root_cert_pem) {
        return OkStatus();  // nothing would change: no write
      }
      // Keep labels and extra annotations others put on the secret.
      for (const auto& [k, v] : c.labels) s.meta.labels.emplace(k, v);
      for (const auto& [k, v] : c.annotations) s.meta.annotations.emplace(k, v);
    }
  }
  ++writes_;
  auto updated = k8s::UpdateSecret(*api_, s);
  if (updated.ok()) {
    Remember(*updated);
    return OkStatus();
  }
  if (k8s::IsConflict(updated.status())) {
    auto current = k8s::GetSecret(*api_, key.ns, key.SecretName());
    if (current.ok()) Remember(*current);
  }
  return updated.status();
}

Status KubeSecretStore::Delete(const ServiceAccountKey& key) {
  Status s = k8s::DeleteSecret(*api_, key.ns, key.SecretName());
  if (s.ok() || k8s::IsNotFound(s)) Forget(key.ns, key.SecretName(), 0);
  return s;
}

// ---- CA secret -------------------------------------------------------------------------

Result<StoredCa> KubeCaStore::Load() const {
  auto s = k8s::GetSecret(*api_, ns_, kCaSecretName);
  if (!s.ok()) return s.status();
  auto get = [&](const char* k) {
    auto it = s->data.find(k);
    return it == s->data.end() ? std::string() : it->second;
  };
  StoredCa ca{get(kCaCertKey), get(kCaKeyKey), get(kRootCertKey), get(kCertChainKey)};
  // Istio 0.x wrote only ca-cert.pem and ca-key.pem: the CA cert is then the root.
  if (ca.root_cert_pem.empty()) ca.root_cert_pem = ca.ca_cert_pem;
  if (ca.ca_cert_pem.empty() || ca.ca_key_pem.empty()) {
    return FailedPrecondition("secret " + ns_ + "/" + kCaSecretName +
                              " lacks ca-cert.pem or ca-key.pem");
  }
  return ca;
}

Status KubeCaStore::Create(const StoredCa& ca) {
  k8s::Secret s;
  s.meta.name = kCaSecretName;
  s.meta.ns = ns_;
  s.type = kCaSecretType;
  s.data[kCaCertKey] = ca.ca_cert_pem;
  s.data[kCaKeyKey] = ca.ca_key_pem;
  s.data[kRootCertKey] = ca.root_cert_pem;
  s.data[kCertChainKey] = ca.cert_chain_pem;
  // AlreadyExists goes back as is: the loser of a creation race loads the winner's CA.
  return k8s::CreateSecret(*api_, s).status();
}

// ---- Token review ----------------------------------------------------------------------

std::optional<pki::ServiceAccountRef> ParseServiceAccountUser(const std::string& username) {
  const std::string prefix = "system:serviceaccount:";
  if (username.rfind(prefix, 0) != 0) return std::nullopt;
  std::string rest = username.substr(prefix.size());
  auto colon = rest.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= rest.size()) return std::nullopt;
  std::string sa = rest.substr(colon + 1);
  if (sa.find(':') != std::string::npos) return std::nullopt;
  return pki::ServiceAccountRef{rest.substr(0, colon), sa};
}

KubeTokenReviewer::KubeTokenReviewer(std::shared_ptr<k8s::Api> api,
                                     std::vector<std::string> audiences, const Clock& clock,
                                     Duration cache_ttl)
    : api_(std::move(api)), audiences_(std::move(audiences)), clock_(clock), ttl_(cache_ttl) {}

Result<pki::ServiceAccountRef> KubeTokenReviewer::Review(const std::string& bearer_token) {
  // The cache is keyed by the token's SHA-256 so that tokens are not kept in memory.
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bearer_token.data()), bearer_token.size(), digest);
  std::string h(reinterpret_cast<char*>(digest), sizeof digest);
  const TimePoint now = clock_.Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(h);
    if (it != cache_.end()) {
      if (it->second.second > now) return it->second.first;
      cache_.erase(it);
    }
  }
  auto review = k8s::ReviewToken(*api_, bearer_token, audiences_);
  if (!review.ok()) {
    if (review.status().code() == Code::kUnavailable ||
        review.status().code() == Code::kResourceExhausted) {
      return Unavailable("token review unavailable", review.status().message());
    }
    return Internal("token review failed", review.status().message());
  }
  if (!review->authenticated) {
    return Status(Code::kUnauthenticated, "the bearer token was not accepted", review->error);
  }
  auto sa = ParseServiceAccountUser(review->username);
  if (!sa) {
    return Status(Code::kUnauthenticated, "the bearer token is not a service account's",
                  "user=" + review->username);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() > 10000) cache_.clear();  // crude bound; entries live 10 s anyway
  cache_[h] = {*sa, now + ttl_};
  return *sa;
}

// ---- Leader election -------------------------------------------------------------------

LeaseStep DecideLeaseStep(const std::optional<k8s::Lease>& current, TimePoint observed_at,
                          const std::string& identity, TimePoint now) {
  if (!current) return LeaseStep::kCreate;
  if (current->holder == identity) return LeaseStep::kRenew;
  if (current->holder.empty()) return LeaseStep::kTakeOver;  // released
  const auto duration = std::chrono::seconds(std::max(1, current->duration_seconds));
  if (now >= observed_at + duration) return LeaseStep::kTakeOver;
  return LeaseStep::kWait;
}

KubeLeaderElector::KubeLeaderElector(std::shared_ptr<k8s::Api> api, LeaseConfig config,
                                     const Clock& clock, MetricsRegistry& metrics)
    : api_(std::move(api)),
      config_(std::move(config)),
      clock_(clock),
      leader_gauge_(metrics.GetGauge("istio_ca_leader",
                                     "1 if this replica holds the leader Lease and runs the secret "
                                     "controller, 0 otherwise.",
                                     {{"identity", config_.identity}})) {}

KubeLeaderElector::~KubeLeaderElector() { Stop(); }

void KubeLeaderElector::SetLeading(bool leading) {
  bool was = leading_.exchange(leading);
  leader_gauge_.Set(leading ? 1 : 0);
  if (was != leading) {
    Logger("leader")->info("leadership {} identity={} lease={}/{}", leading ? "acquired" : "lost",
                           config_.identity, config_.ns, config_.name);
    if (on_change_) on_change_(leading);
  }
}

bool KubeLeaderElector::TryAcquireOrRenew() {
  const TimePoint now = clock_.Now();
  auto got = k8s::GetLease(*api_, config_.ns, config_.name);
  std::optional<k8s::Lease> current;
  if (got.ok()) {
    current = *got;
  } else if (!k8s::IsNotFound(got.status())) {
    return false;  // unknown: the caller's renew deadline decides
  }
  if (current) {
    std::string seen = current->holder + "@" +
                       (current->renew_time ? k8s::FormatMicroTime(*current->renew_time) : "");
    if (seen != observed_key_) {
      observed_key_ = seen;
      observed_at_ = now;
    }
  }
  const int duration_s = static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(config_.lease_duration).count());
  switch (DecideLeaseStep(current, observed_at_, config_.identity, now)) {
    case LeaseStep::kCreate: {
      k8s::Lease l;
      l.meta.name = config_.name;
      l.meta.ns = config_.ns;
      l.holder = config_.identity;
      l.duration_seconds = duration_s;
      l.acquire_time = l.renew_time = now;
      return k8s::CreateLease(*api_, l).ok();  // AlreadyExists: another replica was faster
    }
    case LeaseStep::kRenew: {
      k8s::Lease l = *current;
      l.renew_time = now;
      l.duration_seconds = duration_s;
      return k8s::UpdateLease(*api_, l).ok();
    }
    case LeaseStep::kTakeOver: {
      k8s::Lease l = *current;
      l.holder = config_.identity;
      l.duration_seconds = duration_s;
      l.acquire_time = l.renew_time = now;
      l.transitions += 1;
      return k8s::UpdateLease(*api_, l).ok();  // Conflict: someone else took it first
    }
    case LeaseStep::kWait: return false;
  }
  return false;
}

Status KubeLeaderElector::Start(std::function<void(bool leading)> on_change) {
  on_change_ = std::move(on_change);
  leader_gauge_.Set(0);
  thread_ = std::thread([this] { Loop(); });
  return OkStatus();
}

void KubeLeaderElector::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    const TimePoint now = clock_.Now();
    bool ok = TryAcquireOrRenew();
    if (ok) {
      last_renew_ = now;
      SetLeading(true);
    } else if (leading_ && now - last_renew_ >= config_.renew_deadline) {
      // Could not renew in time: stop acting as leader before the lease can pass to another.
      SetLeading(false);
    } else if (leading_) {
      // Still within the renew deadline: keep leading, try again soon.
    }
    lock.lock();
    cv_.wait_for(lock, config_.retry_period, [this] { return stopping_; });
  }
}

void KubeLeaderElector::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (leading_) {
    // Release, so a standby takes over at once instead of after the lease duration.
    auto got = k8s::GetLease(*api_, config_.ns, config_.name);
    if (got.ok() && got->holder == config_.identity) {
      k8s::Lease l = *got;
      l.holder.clear();
      l.duration_seconds = 1;
      (void)k8s::UpdateLease(*api_, l);
    }
    SetLeading(false);
  }
}

// ---- Assembly --------------------------------------------------------------------------

Result<Backends> MakeKubernetesBackends(const DaemonOptions& options, MetricsRegistry& metrics) {
  Result<k8s::RestConfig> config =
      options.kube_config.empty()
          ? k8s::InClusterConfig([](const char* k) { return std::getenv(k); })
          : k8s::LoadKubeconfig(options.kube_config);
  if (!config.ok()) return config.status();
  config->qps = options.kube_api_qps;
  config->burst = options.kube_api_burst;
  ASSIGN_OR_RETURN(std::unique_ptr<k8s::HttpApi> http, k8s::HttpApi::Create(*config));
  std::shared_ptr<k8s::Api> api(std::move(http));

  std::vector<std::string> namespaces = options.listened_namespaces;
  if (namespaces.empty()) {
    // Istio 0.x–1.0: with no --listened-namespace, env NAMESPACE scopes the controller.
    if (const char* ns = std::getenv("NAMESPACE"); ns != nullptr && *ns != '\0') namespaces = {ns};
  }
  Backends b;
  auto gate = std::make_shared<SyncGate>(2);
  b.service_accounts =
      std::make_unique<KubeServiceAccountSource>(api, namespaces, KubeInformerTuning{}, gate);
  b.secrets = std::make_unique<KubeSecretStore>(api, namespaces, KubeInformerTuning{}, gate);
  b.ca_store = std::make_unique<KubeCaStore>(api, options.storage_namespace);
  b.token_reviewer =
      std::make_shared<KubeTokenReviewer>(api, options.token_audiences, SystemClock::Get());
  LeaseConfig lease;
  lease.ns = options.storage_namespace;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::random_device rd;
  // Pod name (unique per replica), then pid and a random part for replicas on one host.
  lease.identity =
      std::string(host) + "_" + std::to_string(getpid()) + "_" + std::to_string(rd() % 1000000);
  b.leader = std::make_unique<KubeLeaderElector>(api, lease, SystemClock::Get(), metrics);
  return b;
}

}  // namespace istioca::ca
