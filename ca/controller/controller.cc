#include "ca/controller/controller.h"

#include <algorithm>
#include <atomic>

#include "base/backoff.h"
#include "base/log.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "pki/spiffe.h"

namespace istioca::ca {
namespace {

// Istio's webhook service accounts (0.8/1.0 table): SA name → service name.
const std::map<std::string, std::string>& WebhookServices() {
  static const auto* table = new std::map<std::string, std::string>{
      {"istio-sidecar-injector-service-account", "istio-sidecar-injector"},
      {"istio-galley-service-account", "istio-galley"},
  };
  return *table;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

const char* SecretActionName(SecretAction action) {
  switch (action) {
    case SecretAction::kNone: return "none";
    case SecretAction::kCreate: return "create";
    case SecretAction::kRefresh: return "refresh";
    case SecretAction::kDelete: return "delete";
  }
  return "unknown";
}

SecretAction DecideAction(const ObservedSecret& o) {
  if (!o.sa_exists) return o.secret_exists ? SecretAction::kDelete : SecretAction::kNone;
  if (!o.secret_exists) return SecretAction::kCreate;
  return o.rotation.refresh() ? SecretAction::kRefresh : SecretAction::kNone;
}

std::vector<std::string> WorkloadDnsNames(const IssuancePolicy& policy,
                                          const std::string& storage_namespace,
                                          const ServiceAccountKey& key) {
  std::vector<std::string> names;
  if (policy.append_dns_names && key.ns == storage_namespace) {
    auto it = WebhookServices().find(key.name);
    if (it != WebhookServices().end()) {
      names.push_back(it->second + "." + key.ns + ".svc");
      names.push_back(it->second + "." + key.ns);
    }
  }
  auto custom = policy.custom_dns_names.find(key.name + "." + key.ns);
  if (custom != policy.custom_dns_names.end()) {
    for (const std::string& n : custom->second) {
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
  }
  return names;
}

Controller::Controller(Authority& authority, ServiceAccountSource& service_accounts,
                       SecretStore& secrets, const Clock& clock, MetricsRegistry& metrics,
                       ControllerOptions options)
    : authority_(authority),
      service_accounts_(service_accounts),
      secrets_(secrets),
      clock_(clock),
      options_(std::move(options)),
      created_count_(metrics.GetCounter("citadel_secret_controller_svc_acc_created_cert_count",
                                        "The number of certificates created due to service "
                                        "account creation.")),
      deleted_count_(metrics.GetCounter("citadel_secret_controller_svc_acc_deleted_cert_count",
                                        "The number of certificates deleted due to service "
                                        "account deletion.")),
      secret_deleted_count_(metrics.GetCounter(
          "citadel_secret_controller_secret_deleted_cert_count",
          "The number of certificates recreated due to secret deletion (service account still "
          "exists).")),
      csr_err_count_(metrics.GetCounter("citadel_secret_controller_csr_err_count",
                                        "The number of errors occurred when creating the CSR "
                                        "(key generation).")),
      metrics_(metrics),
      issue_latency_(metrics.GetHistogram(
          "istio_ca_workload_secret_issue_seconds",
          "Time to generate a key, sign and publish one workload secret.", LatencyBuckets())) {
  // Registered up front so that /metrics shows them at 0 before the first error.
  for (const char* e : {"CA_NOT_READY", "TTL_ERROR", "CERT_GEN_ERROR"}) {
    metrics.GetCounter("citadel_secret_controller_csr_sign_err_count",
                       "The number of errors occurred when signing the CSR.", {{"error", e}});
  }
}

Controller::~Controller() { Stop(); }

SyncStats Controller::SyncAll() { return Reconcile({}, true); }

SyncStats Controller::SyncKeys(const std::vector<ServiceAccountKey>& keys) {
  return Reconcile(keys, false);
}

SyncStats Controller::Reconcile(const std::vector<ServiceAccountKey>& requested, bool full) {
  std::lock_guard<std::mutex> pass(sync_mu_);
  auto log = Logger("controller");
  SyncStats stats;
  const TimePoint now = clock_.Now();
  std::shared_ptr<const CaBundle> bundle = authority_.Bundle();
  if (bundle == nullptr) {
    log->debug("skipping reconcile: the CA is not loaded");
    return stats;
  }
  const std::string roots_pem = bundle->RootsPem();
  // Only a pass that lists after both caches completed their first list sees every object; one
  // that started earlier may have worked from partial lists even if the caches finish meanwhile.
  const bool backends_synced_at_start = full && BackendsSynced();

  std::set<ServiceAccountKey> sa_set;
  std::set<ServiceAccountKey> keys;
  bool listed = false;
  if (full) {
    auto sas = service_accounts_.List();
    auto secrets = secrets_.List();
    if (!sas.ok() || !secrets.ok()) {
      const Status& s = !sas.ok() ? sas.status() : secrets.status();
      log->warn("full resync skipped: listing failed error=\"{}\"", s.ToString());
      stats.failed++;
      return stats;
    }
    sa_set.insert(sas->begin(), sas->end());
    keys = sa_set;
    keys.insert(secrets->begin(), secrets->end());
    listed = true;
  } else {
    keys.insert(requested.begin(), requested.end());
  }

  const std::vector<ServiceAccountKey> ordered(keys.begin(), keys.end());
  RunWorkers(ordered, listed ? &sa_set : nullptr, now, roots_pem, stats);

  if (full) {
    std::lock_guard<std::mutex> lock(mu_);
    // Forget keys that no longer exist anywhere.
    for (auto it = known_.begin(); it != known_.end();) {
      it = keys.count(it->first) ? std::next(it) : known_.erase(it);
    }
    for (auto it = failures_.begin(); it != failures_.end();) {
      it = keys.count(it->first) ? std::next(it) : failures_.erase(it);
    }
    if (backends_synced_at_start && !synced_ && !abort_pass_) {
      synced_ = true;
      log->info(
          "controller synced service_accounts={} created={} refreshed={} deleted={} "
          "failed={}",
          sa_set.size(), stats.created, stats.refreshed, stats.deleted, stats.failed);
    }
  }
  return stats;
}

std::optional<Controller::Work> Controller::Plan(const ServiceAccountKey& key, bool sa_exists,
                                                 TimePoint now, const std::string& roots_pem,
                                                 SyncStats& stats) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto f = failures_.find(key);
    if (f != failures_.end() && f->second.retry_at > now) {
      stats.skipped_backoff++;
      return std::nullopt;
    }
  }
  ObservedSecret observed;
  observed.sa_exists = sa_exists;
  std::string version;
  auto secret = secrets_.Get(key);
  if (secret.ok()) {
    observed.secret_exists = true;
    version = secret->version;
    std::optional<PublishedLeaf> leaf;
    bool cached = false;
    const size_t chain_hash = std::hash<std::string>{}(secret->cert_chain_pem);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto k = known_.find(key);
      if (k != known_.end() && k->second.chain_hash == chain_hash) {
        leaf = k->second.leaf;
        cached = true;
      }
    }
    if (!cached) {
      auto chain = pki::Certificate::ParsePemChain(secret->cert_chain_pem);
      if (chain.ok()) {
        const pki::Certificate& c = chain->front();
        auto id = pki::WorkloadId(authority_.policy().trust_domain, key.ns, key.name);
        const std::vector<std::string> uris = c.UriSans();
        const bool identity = id.ok() && uris.size() == 1 && uris[0] == id->ToString();
        leaf = PublishedLeaf{c.NotBefore(), c.NotAfter(), c.SerialHex(), identity};
      }
    }
    // The key is checked on every pass, not only when the chain changed: a secret whose key.pem
    // was emptied or replaced by junk next to an intact chain is broken for its readers.
    const std::optional<PublishedLeaf> usable = secret->KeyLooksValid() ? leaf : std::nullopt;
    observed.rotation =
        DecideRotation(usable, secret->root_cert_pem == roots_pem, options_.rotation, now);
    std::lock_guard<std::mutex> lock(mu_);
    if (leaf) {
      TimePoint refresh_at = observed.rotation.refresh_at;
      auto k = known_.find(key);
      if (k != known_.end() && k->second.leaf.serial_hex == leaf->serial_hex) {
        // Keep the floor set when we issued it (see Execute): a cert clamped by an expiring CA
        // is refreshed at the resync pace, not in a loop.
        refresh_at = std::max(refresh_at, k->second.refresh_at);
        if (observed.rotation.reason == RotationReason::kGracePeriod && refresh_at > now) {
          observed.rotation.reason = RotationReason::kNone;
        }
      }
      const size_t roots_hash = std::hash<std::string>{}(secret->root_cert_pem);
      const TimePoint carried_since =
          k != known_.end() && k->second.roots_hash == roots_hash ? k->second.carried_since : now;
      known_[key] = Known{chain_hash, *leaf, refresh_at, roots_hash, carried_since};
    } else {
      known_.erase(key);
    }
  } else if (secret.status().code() != Code::kNotFound) {
    RecordFailure(key, secret.status(), now);
    stats.failed++;
    return std::nullopt;
  }

  const SecretAction action = DecideAction(observed);
  if (action == SecretAction::kNone) {
    if (!sa_exists) {
      std::lock_guard<std::mutex> lock(mu_);
      known_.erase(key);
    }
    stats.unchanged++;
    return std::nullopt;
  }
  return Work{key, action, version, observed.rotation.reason};
}

void Controller::RunWorkers(const std::vector<ServiceAccountKey>& keys,
                            const std::set<ServiceAccountKey>* sa_set, TimePoint now,
                            const std::string& roots_pem, SyncStats& stats) {
  if (keys.empty()) return;
  std::atomic<size_t> next{0};
  std::mutex stats_mu;
  auto run = [&] {
    SyncStats local;
    for (size_t i = next++; i < keys.size() && !abort_pass_; i = next++) {
      const ServiceAccountKey& key = keys[i];
      bool sa_exists;
      if (sa_set != nullptr) {
        sa_exists = sa_set->count(key) > 0;
      } else {
        auto exists = service_accounts_.Exists(key);
        if (!exists.ok()) {
          RecordFailure(key, exists.status(), now);
          local.failed++;
          continue;
        }
        sa_exists = *exists;
      }
      std::optional<Work> w = Plan(key, sa_exists, now, roots_pem, local);
      if (!w) continue;
      Status s = Execute(*w);
      if (s.ok()) {
        RecordSuccess(w->key);
        (w->action == SecretAction::kCreate    ? local.created
         : w->action == SecretAction::kRefresh ? local.refreshed
                                               : local.deleted)++;
      } else {
        RecordFailure(w->key, s, now);
        local.failed++;
      }
    }
    std::lock_guard<std::mutex> lock(stats_mu);
    stats.created += local.created;
    stats.refreshed += local.refreshed;
    stats.deleted += local.deleted;
    stats.failed += local.failed;
    stats.skipped_backoff += local.skipped_backoff;
    stats.unchanged += local.unchanged;
  };
  const size_t n = std::min<size_t>(std::max(1, options_.workers), keys.size());
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; ++i) threads.emplace_back(run);
  run();
  for (std::thread& t : threads) t.join();
}

Status Controller::Execute(const Work& w) {
  auto log = Logger("controller");
  if (w.action == SecretAction::kDelete) {
    Status s = secrets_.Delete(w.key);
    if (!s.ok() && s.code() != Code::kNotFound) return s.WithContext("deleting secret");
    deleted_count_.Inc();
    std::optional<PublishedLeaf> gone;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = known_.find(w.key); it != known_.end()) gone = it->second.leaf;
      known_.erase(w.key);
    }
    log->info("deleted workload secret ns={} name={} reason=service-account-deleted", w.key.ns,
              w.key.SecretName());
    if (options_.events != nullptr) {
      CaEvent e{clock_.Now(),
                "secret_deleted",
                {{"namespace", w.key.ns},
                 {"name", w.key.SecretName()},
                 {"reason", "service-account-deleted"}}};
      // Known unless the secret was orphaned before we ever read it.
      if (gone) {
        e.fields["serial"] = gone->serial_hex;
        e.fields["not_after"] = FormatRfc3339(gone->not_after);
      }
      options_.events->Record(e);
    }
    return OkStatus();
  }

  const auto t0 = std::chrono::steady_clock::now();
  const IssuancePolicy& policy = authority_.policy();
  auto id = pki::WorkloadId(policy.trust_domain, w.key.ns, w.key.name);
  if (!id.ok()) return id.status().WithContext("service account name");
  auto key = pki::PrivateKey::Generate(policy.workload_key_type);
  if (!key.ok()) {
    csr_err_count_.Inc();
    return key.status().WithContext("generating workload key");
  }
  auto issued = authority_.Sign(key->get(), {id->ToString()},
                                WorkloadDnsNames(policy, options_.storage_namespace, w.key),
                                options_.workload_ttl);
  if (!issued.ok()) {
    const Code c = issued.status().code();
    const char* label = c == Code::kUnavailable       ? "CA_NOT_READY"
                        : c == Code::kInvalidArgument ? "TTL_ERROR"
                                                      : "CERT_GEN_ERROR";
    metrics_
        .GetCounter("citadel_secret_controller_csr_sign_err_count",
                    "The number of errors occurred when signing the CSR.", {{"error", label}})
        .Inc();
    return issued.status().WithContext("signing workload certificate");
  }
  auto key_pem = key->ToPem();
  if (!key_pem.ok()) {
    csr_err_count_.Inc();
    return key_pem.status().WithContext("encoding workload key");
  }
  WorkloadSecret secret{issued->CertChainPem(), std::move(*key_pem), issued->RootCertPem(),
                        w.version};
  Status s = w.action == SecretAction::kCreate ? secrets_.Create(w.key, secret)
                                               : secrets_.Update(w.key, secret);
  if (!s.ok()) {
    if (s.code() == Code::kAlreadyExists || s.code() == Code::kAborted ||
        (s.code() == Code::kNotFound && w.action == SecretAction::kRefresh)) {
      // Someone changed it since we read it: look again with a fresh read, soon.
      Notify(w.key);
      log->debug("workload secret changed under us, requeued ns={} name={} code={}", w.key.ns,
                 w.key.SecretName(), CodeName(s.code()));
      return OkStatus();
    }
    return s.WithContext(w.action == SecretAction::kCreate ? "creating secret" : "updating secret");
  }
  issue_latency_.Observe(SecondsSince(t0));
  bool recreated = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = known_.find(w.key);
    recreated = w.action == SecretAction::kCreate && it != known_.end();
    const pki::Certificate& leaf = issued->leaf;
    PublishedLeaf pl{leaf.NotBefore(), leaf.NotAfter(), leaf.SerialHex(), true};
    // A new cert
    // that is due at once (the CA itself expires within the grace period, so NotAfter was
    // clamped) is retried at the resync pace, not on every tick.
    TimePoint refresh_at = RefreshTime(pl, options_.rotation);
    const TimePoint floor =
        clock_.Now() + std::chrono::duration_cast<TimePoint::duration>(options_.resync_period);
    if (refresh_at <= clock_.Now()) refresh_at = floor;
    known_[w.key] = Known{std::hash<std::string>{}(secret.cert_chain_pem), pl, refresh_at,
                          std::hash<std::string>{}(secret.root_cert_pem), clock_.Now()};
  }
  if (w.action == SecretAction::kCreate) {
    created_count_.Inc();
    if (recreated) secret_deleted_count_.Inc();
  }
  log->info(
      "{} workload secret ns={} name={} reason={} serial={} not_after={}",
      w.action == SecretAction::kCreate ? (recreated ? "re-created" : "created") : "refreshed",
      w.key.ns, w.key.SecretName(),
      w.action == SecretAction::kCreate ? (recreated ? "secret-deleted" : "new")
                                        : RotationReasonName(w.reason),
      issued->leaf.SerialHex(), FormatRfc3339(issued->leaf.NotAfter()));
  if (options_.events != nullptr) {
    options_.events->Record(CaEvent{
        clock_.Now(),
        w.action == SecretAction::kCreate ? "secret_created" : "secret_refreshed",
        {{"namespace", w.key.ns},
         {"name", w.key.SecretName()},
         {"reason", w.action == SecretAction::kCreate ? (recreated ? "secret-deleted" : "new")
                                                      : RotationReasonName(w.reason)},
         {"serial", issued->leaf.SerialHex()},
         {"not_after", FormatRfc3339(issued->leaf.NotAfter())}}});
  }
  return OkStatus();
}

void Controller::RecordFailure(const ServiceAccountKey& key, const Status& status, TimePoint now) {
  int count;
  Duration delay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Failure& f = failures_[key];
    count = ++f.count;
    delay = std::chrono::duration_cast<Duration>(
        BackoffDelay(f.count, options_.backoff_initial, options_.backoff_max));
    f.retry_at = now + std::chrono::duration_cast<TimePoint::duration>(delay);
  }
  auto log = Logger("controller");
  // Logged once per failure streak; retries are debug.
  if (count == 1) {
    log->warn("reconcile failed, will retry with backoff ns={} sa={} retry_in={} error=\"{}\"",
              key.ns, key.name, FormatDuration(delay), status.ToString());
  } else {
    log->debug("reconcile failed again ns={} sa={} attempt={} retry_in={} error=\"{}\"", key.ns,
               key.name, count, FormatDuration(delay), status.ToString());
  }
}

void Controller::RecordSuccess(const ServiceAccountKey& key) {
  int count = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = failures_.find(key);
    if (it == failures_.end()) return;
    count = it->second.count;
    failures_.erase(it);
  }
  Logger("controller")
      ->info("reconcile recovered ns={} sa={} after_failures={}", key.ns, key.name, count);
}

void Controller::Notify(const ServiceAccountKey& key) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.insert(key);
  }
  cv_.notify_one();
}

void Controller::RequestResync() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    resync_requested_ = true;
  }
  cv_.notify_one();
}

bool Controller::Synced() const { return synced_.load(); }

bool Controller::BackendsSynced() const {
  return service_accounts_.HasSynced() && secrets_.HasSynced();
}

std::optional<TimePoint> Controller::EarliestExpiry() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<TimePoint> earliest;
  for (const auto& [key, k] : known_) {
    if (!earliest || k.leaf.not_after < *earliest) earliest = k.leaf.not_after;
  }
  return earliest;
}

BundleProgress Controller::BundleCarried(const std::string& roots_pem) const {
  const size_t want = std::hash<std::string>{}(roots_pem);
  BundleProgress p;
  std::lock_guard<std::mutex> lock(mu_);
  p.total = known_.size();
  for (const auto& [key, k] : known_) {
    if (k.roots_hash != want) continue;
    p.updated++;
    if (!p.last_write || k.carried_since > *p.last_write) p.last_write = k.carried_since;
  }
  p.synced = synced_;
  return p;
}

size_t Controller::ManagedCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return known_.size();
}

std::vector<ManagedCert> Controller::Managed() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ManagedCert> out;
  out.reserve(known_.size());
  for (const auto& [key, k] : known_) {
    out.push_back({key, k.leaf.serial_hex, k.leaf.not_before, k.leaf.not_after, k.refresh_at});
  }
  return out;
}

void Controller::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (loop_.joinable()) return;
  stopping_ = false;
  abort_pass_ = false;
  resync_requested_ = true;
  loop_ = std::thread([this] { Loop(); });
}

void Controller::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  abort_pass_ = true;
  cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  abort_pass_ = false;
}

void Controller::Loop() {
  // Wakes at least every second: due rotations and backoff retries are found by scanning the
  // in-memory state (cheap), so a wall-clock jump past expiry is acted on within a second even
  // though the wait itself runs on the steady clock.
  constexpr auto kTick = std::chrono::seconds(1);
  auto next_full = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, kTick,
                 [this] { return stopping_ || resync_requested_ || !pending_.empty(); });
    if (stopping_) break;
    // Until a full pass has run on complete caches, every wake-up checks whether the backends
    // synced since: the pass that leadership triggered may have run before they had (the
    // backends' first-list notifications then wake this loop). Asked without mu_: a backend
    // may hold its own lock while notifying us.
    lock.unlock();
    const bool first_synced_pass_due = !synced_.load() && BackendsSynced();
    lock.lock();
    if (stopping_) break;
    const bool full =
        first_synced_pass_due || resync_requested_ || std::chrono::steady_clock::now() >= next_full;
    std::vector<ServiceAccountKey> keys;
    if (!full) {
      const TimePoint now = clock_.Now();
      keys.assign(pending_.begin(), pending_.end());
      for (const auto& [key, k] : known_) {
        if (k.refresh_at <= now && !pending_.count(key)) keys.push_back(key);
      }
      for (const auto& [key, f] : failures_) {
        if (f.retry_at <= now && !pending_.count(key)) keys.push_back(key);
      }
    }
    pending_.clear();
    resync_requested_ = false;
    if (!full && keys.empty()) continue;
    lock.unlock();
    if (full) {
      next_full =
          std::chrono::steady_clock::now() +
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(options_.resync_period);
      SyncAll();
    } else {
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      SyncKeys(keys);
    }
    lock.lock();
  }
}

}  // namespace istioca::ca
