#include "ca/daemon/daemon.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <fstream>

#include "base/log.h"
#include "base/version.h"
#include "ca/core/ca_loader.h"
#include "ca/daemon/audit_log.h"
#include "ca/daemon/liveness.h"
#include "ca/daemon/monitoring.h"
#include "ca/daemon/status_page.h"
#include "ca/local/ca_store.h"
#include "ca/local/local_backend.h"
#include "ca/trust/manager.h"

namespace istioca::ca {

IssuancePolicy DaemonOptions::Policy() const {
  IssuancePolicy p;
  p.trust_domain = trust_domain;
  p.default_ttl = workload_cert_ttl;
  p.max_ttl = max_workload_cert_ttl;
  p.workload_key_type = workload_key_type;
  p.append_dns_names = append_dns_names;
  p.custom_dns_names = custom_dns_names;
  return p;
}

RotationPolicy DaemonOptions::Rotation() const {
  RotationPolicy r;
  r.grace_ratio = workload_cert_grace_period_ratio;
  r.min_grace = workload_cert_min_grace_period;
  return r;
}

Result<std::map<std::string, std::vector<std::string>>> ParseCustomDnsNames(std::string_view text) {
  std::map<std::string, std::vector<std::string>> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view entry = text.substr(start, comma - start);
    start = comma + 1;
    if (entry.empty()) continue;
    const size_t colon = entry.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == entry.size() ||
        entry.substr(0, colon).find('.') == std::string_view::npos) {
      return InvalidArgument("--custom-dns-names: entry \"" + std::string(entry) +
                             "\" is not sa.ns:domain");
    }
    out[std::string(entry.substr(0, colon))].push_back(std::string(entry.substr(colon + 1)));
  }
  return out;
}

Status ValidateDaemonOptions(const DaemonOptions& o) {
  auto bad = [](const std::string& m) { return InvalidArgument(m); };
  if (Status s = pki::ValidateTrustDomain(o.trust_domain); !s.ok()) {
    return bad("--trust-domain: " + s.message());
  }
  const bool plugged = !o.signing_cert.empty() || !o.signing_key.empty() || !o.root_cert.empty() ||
                       !o.cert_chain.empty();
  if (plugged && o.self_signed_ca) {
    return bad("--self-signed-ca conflicts with --signing-cert/--signing-key/--root-cert");
  }
  if (!o.self_signed_ca &&
      (o.signing_cert.empty() || o.signing_key.empty() || o.root_cert.empty())) {
    return bad("a plugged-in CA needs --signing-cert, --signing-key and --root-cert");
  }
  if (o.self_signed_ca_cert_ttl <= Duration::zero())
    return bad("--self-signed-ca-cert-ttl must be positive");
  if (o.workload_cert_ttl <= Duration::zero()) return bad("--workload-cert-ttl must be positive");
  if (o.max_workload_cert_ttl <= Duration::zero())
    return bad("--max-workload-cert-ttl must be positive");
  if (o.workload_cert_ttl > o.max_workload_cert_ttl) {
    return bad("--workload-cert-ttl " + FormatDuration(o.workload_cert_ttl) +
               " is greater than --max-workload-cert-ttl " +
               FormatDuration(o.max_workload_cert_ttl));
  }
  if (!(o.workload_cert_grace_period_ratio >= 0 && o.workload_cert_grace_period_ratio <= 1)) {
    return bad("--workload-cert-grace-period-ratio must be within [0, 1]");
  }
  if (o.workload_cert_min_grace_period < Duration::zero()) {
    return bad("--workload-cert-min-grace-period must not be negative");
  }
  if (o.local_dir.empty() && !o.kube_config.empty() &&
      o.kube_config.find('\0') != std::string::npos) {
    return bad("--kube-config is not a path");
  }
  for (const std::string& ns : o.listened_namespaces) {
    if (!ValidNamespaceName(ns))
      return bad("--listened-namespaces: \"" + ns + "\" is not a namespace name");
  }
  if (!ValidNamespaceName(o.storage_namespace)) {
    return bad("--istio-ca-storage-namespace: \"" + o.storage_namespace +
               "\" is not a namespace name");
  }
  if (!(o.kube_api_qps > 0)) return bad("--kube-api-qps must be positive");
  if (o.kube_api_burst < 1) return bad("--kube-api-burst must be at least 1");
  for (auto [port, flag] :
       {std::pair{o.grpc_port, "--grpc-port"}, {o.monitoring_port, "--monitoring-port"}}) {
    if (port < 0 || port > 65535) return bad(std::string(flag) + " must be within 0..65535");
  }
  if (o.grpc_port != 0 && o.grpc_port == o.monitoring_port) {
    return bad("--grpc-port and --monitoring-port must differ");
  }
  if (o.grpc_port != 0 && o.grpc_host_identities.empty())
    return bad("--grpc-host-identities must not be empty");
  if (o.token_audiences.empty()) return bad("--token-audiences must not be empty");
  if (o.liveness_probe_path.empty() != (o.liveness_probe_interval <= Duration::zero())) {
    return bad("--liveness-probe-path and a positive --liveness-probe-interval go together");
  }
  if (o.trust_propagation_delay < Duration::zero())
    return InvalidArgument("--trust-propagation-delay must not be negative");
  if (o.self_signed_root_cert_check_interval <= Duration::zero())
    return InvalidArgument("--self-signed-root-cert-check-interval must be positive");
  if (o.probe_check_interval <= Duration::zero())
    return bad("--probe-check-interval must be positive");
  if (o.resync_period < std::chrono::seconds(1)) return bad("--resync-period must be at least 1s");
  if (o.workers < 1 || o.workers > 64) return bad("--workers must be within 1..64");
  if (o.audit_log_max_size < kMinAuditLogSize) {
    return bad("--audit-log-max-size must be at least " + std::to_string(kMinAuditLogSize / 1024) +
               "KiB");
  }
  if (o.audit_log_max_files < 0 || o.audit_log_max_files > kMaxAuditLogFiles) {
    return bad("--audit-log-max-files must be within 0.." + std::to_string(kMaxAuditLogFiles));
  }
  for (const auto& [key, names] : o.custom_dns_names) {
    for (const std::string& n : names) {
      if (n.empty() || n.find_first_of(" /\\@") != std::string::npos) {
        return bad("--custom-dns-names: \"" + n + "\" is not a DNS name");
      }
    }
  }
  return OkStatus();
}

namespace {

double Seconds(TimePoint t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

double ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace

// The daemon's parts and the named steps that assemble them; Daemon::Start runs the steps in
// order, Daemon::Wait takes them down in reverse.
struct Daemon::Impl {
  Impl(DaemonOptions o, DaemonParts p, const Clock& c, MetricsRegistry& m)
      : options(std::move(o)), parts(std::move(p)), clock(c), metrics(m) {}

  Status MakeBackends();
  Status LoadCa();
  trust::Publication Publication(const std::string& bundle, uint64_t generation);
  void SetLeading(bool is_leader);
  void RegisterGauges();
  Status StartController();
  Status StartComponents();
  Status StartMonitoring();
  void StartLiveness();
  void StopAll();
  bool Ready() const;
  Readiness ReadinessDetail() const;
  StatusData StatusSnapshot() const;
  Status LivenessCheck() const;

  DaemonOptions options;
  DaemonParts parts;
  const Clock& clock;
  MetricsRegistry& metrics;
  Authority* authority = nullptr;  // owned by the Daemon
  Backends backends;
  std::unique_ptr<Controller> controller;
  std::unique_ptr<trust::TrustManager> trust;
  std::unique_ptr<MonitoringServer> monitoring;
  std::unique_ptr<LivenessProber> liveness;
  std::unique_ptr<DaemonContext> context;
  // Every event goes to `events`; `recent` (the status page's memory) is always one of its sinks.
  std::shared_ptr<FanOut> events = std::make_shared<FanOut>();
  std::shared_ptr<RecentEvents> recent = std::make_shared<RecentEvents>();
  std::shared_ptr<AuditLog> audit;  // null unless --audit-log
  // Complete before the monitoring server starts and unchanged until it stops: /readyz reads it
  // from the server's threads without a lock.
  std::vector<std::unique_ptr<DaemonComponent>> components;
  // Scrape-time gauges reading the authority and the controller; removed on stop.
  std::vector<GaugeFunctionHandle> gauges;
  std::atomic<bool> leading{false};
  std::mutex mu;
  std::condition_variable cv;
  bool shutdown = false;
  bool stopped = false;
};

Daemon::Daemon(DaemonOptions options, DaemonParts parts, const Clock& clock,
               MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(parts), clock, metrics)),
      authority_(std::make_unique<Authority>(impl_->options.Policy(), clock)) {
  impl_->authority = authority_.get();
}

Daemon::~Daemon() {
  Shutdown();
  Wait();
}

Status Daemon::Start() {
  Impl& d = *impl_;
  d.events->Add(d.recent);
  // First, so that the trust events of loading the CA are in it too.
  if (!d.options.audit_log.empty()) {
    AuditLogOptions ao;
    ao.path = d.options.audit_log;
    ao.max_size_bytes = d.options.audit_log_max_size;
    ao.max_files = d.options.audit_log_max_files;
    ASSIGN_OR_RETURN(d.audit, AuditLog::Open(ao));
    d.events->Add(d.audit);
  }
  RETURN_IF_ERROR(d.MakeBackends());
  RETURN_IF_ERROR(d.LoadCa());
  d.RegisterGauges();
  RETURN_IF_ERROR(d.StartController());
  RETURN_IF_ERROR(d.StartComponents());
  // After the components: /readyz lists them.
  RETURN_IF_ERROR(d.StartMonitoring());
  // Last: its check goes through the components (the gRPC server).
  d.StartLiveness();
  Logger("daemon")->info("istio-ca started mode={} trust_domain={} ca={}",
                         d.options.LocalMode() ? "local" : "kubernetes", d.options.trust_domain,
                         d.options.self_signed_ca ? "self-signed" : "plugged-in");
  return OkStatus();
}

Status Daemon::Impl::MakeBackends() {
  const BackendFactory& factory = options.LocalMode() ? parts.local_backends : parts.kube_backends;
  if (!factory) return Internal("no backend factory for this mode");  // a wiring error
  ASSIGN_OR_RETURN(backends, factory(options, clock, metrics));
  return OkStatus();
}

Status Daemon::Impl::LoadCa() {
  const DaemonOptions& o = options;
  if (!backends.ca_store) return FailedPrecondition("this backend has no CA store");
  trust::ManagerOptions mo;
  mo.policy.propagation_delay = o.trust_propagation_delay;
  mo.policy.root_grace_percentile = o.self_signed_root_cert_grace_period_percentile;
  mo.root_check_interval = o.self_signed_root_cert_check_interval;
  // A tenth of the workload TTL, at most a minute: short-lived test meshes rotate quickly.
  mo.issued_headroom = std::min<Duration>(std::chrono::minutes(1), o.workload_cert_ttl / 10);
  mo.self_signed = o.self_signed_ca;
  mo.self_signed_options = {o.self_signed_ca_org.empty() ? o.trust_domain : o.self_signed_ca_org,
                            o.self_signed_ca_cert_ttl, o.ca_key_type};
  mo.plugged = {o.signing_cert, o.signing_key, o.root_cert, o.cert_chain};
  mo.events = events.get();
  trust::ManagerHooks hooks;
  hooks.progress = [this](const std::string& bundle, uint64_t generation) {
    return Publication(bundle, generation);
  };
  hooks.publish = [this](const std::string& bundle, uint64_t generation) {
    if (backends.bundle_publisher) backends.bundle_publisher->Publish(bundle, generation);
    if (controller) controller->RequestResync();
  };
  hooks.on_change = [this] {
    if (controller) controller->RequestResync();
  };
  trust = std::make_unique<trust::TrustManager>(*authority, *backends.ca_store, clock, metrics, mo,
                                                std::move(hooks));
  return trust->Init();
}

// How far a bundle generation has reached: every managed workload secret and, in Kubernetes,
// every istio-ca-root-cert ConfigMap. Incomplete until both have listed everything.
trust::Publication Daemon::Impl::Publication(const std::string& bundle, uint64_t generation) {
  trust::Publication p{generation, 0, 0, std::nullopt};
  if (controller) {
    const BundleProgress c = controller->BundleCarried(bundle);
    p.updated += c.updated;
    p.total += c.total;
    p.last_write = c.last_write;
    if (!c.synced) p.total = std::max(p.total, p.updated + 1);
  }
  if (backends.bundle_publisher) {
    const BundleProgress m = backends.bundle_publisher->Progress();
    const bool current = m.generation == generation && m.synced;
    p.updated += current ? m.updated : 0;
    p.total += current ? m.total : std::max<size_t>(m.total, 1);
    if (current && m.last_write && (!p.last_write || *m.last_write > *p.last_write)) {
      p.last_write = m.last_write;
    }
  }
  return p;
}

// Metrics about the CA and the controller, evaluated at scrape time.
void Daemon::Impl::RegisterGauges() {
  Authority* a = authority;
  gauges.push_back(metrics.SetGaugeFunction(
      "citadel_server_root_cert_expiry_timestamp",
      "The unix timestamp, in seconds, when the root cert will expire.", {}, [a] {
        auto b = a->Bundle();
        if (!b || b->roots.empty()) return std::nan("");
        TimePoint t = b->roots[0].NotAfter();
        for (const auto& r : b->roots) t = std::min(t, r.NotAfter());
        return Seconds(t);
      }));
  gauges.push_back(metrics.SetGaugeFunction(
      "citadel_server_cert_chain_expiry_timestamp",
      "The unix timestamp, in seconds, when the CA cert chain will expire.", {}, [a] {
        auto b = a->Bundle();
        if (!b) return std::nan("");
        TimePoint t = b->signer.cert.NotAfter();
        for (const auto& c : b->chain) t = std::min(t, c.NotAfter());
        return Seconds(t);
      }));
  gauges.push_back(metrics.SetGaugeFunction("process_resident_memory_bytes",
                                            "Resident memory size in bytes.", {},
                                            [] { return ResidentBytes(); }));
}

Status Daemon::Impl::StartController() {
  const DaemonOptions& o = options;
  ControllerOptions co;
  co.rotation = o.Rotation();
  co.workload_ttl = o.workload_cert_ttl;
  co.storage_namespace = o.storage_namespace;
  co.resync_period = o.resync_period;
  co.workers = o.workers;
  co.events = events.get();
  controller = std::make_unique<Controller>(*authority, *backends.service_accounts,
                                            *backends.secrets, clock, metrics, co);
  Controller* c = controller.get();
  const Clock* clk = &clock;
  gauges.push_back(metrics.SetGaugeFunction(
      "istio_ca_workload_cert_earliest_expiry_seconds",
      "Seconds until the first managed workload certificate expires if the CA stopped now "
      "(NaN when none is managed).",
      {}, [c, clk] {
        auto t = c->EarliestExpiry();
        if (!t) return std::nan("");
        return std::chrono::duration<double>(*t - clk->Now()).count();
      }));
  gauges.push_back(metrics.SetGaugeFunction(
      "istio_ca_workload_secrets_managed", "Workload secrets the controller currently manages.", {},
      [c] { return static_cast<double>(c->ManagedCount()); }));
  backends.service_accounts->SetHandler([c](const ServiceAccountKey& k) { c->Notify(k); });
  backends.secrets->SetHandler([c](const ServiceAccountKey& k) { c->Notify(k); });
  RETURN_IF_ERROR(backends.secrets->Start());
  RETURN_IF_ERROR(backends.service_accounts->Start());
  if (backends.leader) {
    RETURN_IF_ERROR(backends.leader->Start([this](bool is_leader) {
      Logger("daemon")->info("leadership changed leading={}", is_leader);
      SetLeading(is_leader);
    }));
  } else {
    SetLeading(true);
  }
  trust->Start();
  return OkStatus();
}

// The controller, the bundle publisher and the trust lifecycle's decisions run on the leader
// only; every replica serves and follows the stored trust state.
void Daemon::Impl::SetLeading(bool is_leader) {
  leading = is_leader;
  trust->SetLeading(is_leader);
  if (is_leader) {
    controller->Start();
    if (backends.bundle_publisher) {
      if (Status s = backends.bundle_publisher->Start(); !s.ok()) {
        Logger("daemon")->error("cannot start the bundle publisher error=\"{}\"", s.ToString());
      }
    }
  } else {
    if (backends.bundle_publisher) backends.bundle_publisher->Stop();
    controller->Stop();
  }
}

// Extra components (gRPC service, ...).
Status Daemon::Impl::StartComponents() {
  context = std::make_unique<DaemonContext>(
      DaemonContext{options, *authority, metrics, clock, backends.token_reviewer, *events});
  for (const ComponentFactory& make : parts.components) {
    ASSIGN_OR_RETURN(std::unique_ptr<DaemonComponent> c, make(*context));
    if (c == nullptr) continue;  // the component is off for these options
    Status s = c->Start();
    if (!s.ok()) return s.WithContext("starting " + c->Name());
    Logger("daemon")->info("started component name={}", c->Name());
    components.push_back(std::move(c));
  }
  return OkStatus();
}

Readiness Daemon::Impl::ReadinessDetail() const {
  Readiness r;
  r.ready = Ready();
  auto b = authority->Bundle();
  r.detail = std::string("ca=") + (b ? "loaded" : "missing") + " controller=" +
             (!leading               ? "standby"
              : controller->Synced() ? "synced"
                                     : "syncing");
  for (const auto& c : components) {
    r.detail += " " + c->Name() + "=" + (c->Ready() ? "ready" : "not-ready");
  }
  return r;
}

Status Daemon::Impl::StartMonitoring() {
  if (options.monitoring_port == 0) return OkStatus();
  monitoring = std::make_unique<MonitoringServer>(metrics, [this] { return ReadinessDetail(); });
  monitoring->Handle("/", "text/html; charset=utf-8",
                     [this] { return RenderStatusHtml(StatusSnapshot()); });
  monitoring->Handle("/status.json", "application/json",
                     [this] { return RenderStatusJson(StatusSnapshot()); });
  return monitoring->Start("0.0.0.0", options.monitoring_port);
}

namespace {

StatusCertificate DescribeCa(const pki::Certificate& cert) {
  const pki::CertInfo info = pki::Describe(cert);
  StatusCertificate c;
  c.subject = info.subject;
  c.skid = info.subject_key_id;
  c.serial_hex = info.serial_hex;
  c.not_after = info.not_after;
  return c;
}

}  // namespace

// What the status page shows, read from the authority, the trust manager, the controller and
// the recent events one after the other.
StatusData Daemon::Impl::StatusSnapshot() const {
  StatusData d;
  d.now = clock.Now();
  d.version = VersionShort();
  d.trust_domain = options.trust_domain;
  const Readiness r = ReadinessDetail();
  d.ready = r.ready;
  d.readiness = r.detail;
  std::optional<trust::TrustSnapshot> snap;
  if (trust) snap = trust->Snapshot();
  if (auto b = authority->Bundle()) {
    d.signer = DescribeCa(b->signer.cert);
    // The root the signer chains to: the top of signer + chain names it as its authority.
    const pki::Certificate& top = b->chain.empty() ? b->signer.cert : b->chain.back();
    const std::string anchor_akid = pki::Describe(top).authority_key_id;
    for (const pki::Certificate& root : b->roots) {
      StatusCertificate c = DescribeCa(root);
      c.anchors_signer = (b->SignerIsRoot() && root == b->signer.cert) ||
                         (!anchor_akid.empty() && anchor_akid == c.skid);
      if (snap) {
        for (const trust::RootEntry& e : snap->state.roots) {
          auto parsed = pki::Certificate::ParsePemChain(e.cert_pem);
          if (parsed.ok() && !parsed->empty() && parsed->front() == root) {
            c.leaving = e.leaving;
            c.retire_after = e.retire_after;
          }
        }
      }
      d.roots.push_back(std::move(c));
    }
  }
  if (snap) {
    StatusTrust t;
    t.stage = trust::StageName(snap->state.stage);
    t.bundle_generation = snap->state.bundle_generation;
    t.action = trust::ActionName(snap->decision.action);
    t.gate = trust::GateName(snap->decision.gate);
    t.next_transition = snap->decision.next_transition;
    t.objects_updated = snap->publication.updated;
    t.objects_total = snap->publication.total;
    t.outstanding_not_after = snap->decision.outstanding_not_after;
    t.unsafe_at = snap->decision.unsafe_at;
    d.trust = std::move(t);
  }
  if (controller) {
    for (const ManagedCert& m : controller->Managed()) {
      d.workloads.push_back(
          {m.key.ToString(), m.serial_hex, m.not_before, m.not_after, m.refresh_at});
    }
  }
  for (CaEvent& e : recent->Snapshot()) {
    d.events.push_back({e.time, std::move(e.type), std::move(e.fields)});
  }
  return d;
}

Status Daemon::Impl::LivenessCheck() const {
  const Duration timeout = std::clamp<Duration>(options.probe_check_interval,
                                                std::chrono::seconds(1), std::chrono::seconds(10));
  // At least a minute: certificate times have whole seconds, so a self-issued certificate
  // with a sub-second TTL would already be expired when verified.
  RETURN_IF_ERROR(
      SelfCheck(*authority, LivenessIdentity(options.trust_domain, options.storage_namespace),
                std::max<Duration>(options.probe_check_interval, std::chrono::minutes(1))));
  for (const auto& c : components) {
    if (Status s = c->LivenessCheck(timeout); !s.ok()) return s.WithContext(c->Name());
  }
  return OkStatus();
}

void Daemon::Impl::StartLiveness() {
  if (options.liveness_probe_path.empty()) return;
  liveness = std::make_unique<LivenessProber>(
      [this] { return LivenessCheck(); }, options.liveness_probe_path,
      options.liveness_probe_interval, options.probe_check_interval, metrics);
  liveness->Start();
}

// Reverse order of start. The controller finishes in-flight publications before returning,
// and every publication is atomic, so nothing is left half-written.
void Daemon::Impl::StopAll() {
  if (liveness) liveness->Stop();  // before the components its check calls
  for (auto it = components.rbegin(); it != components.rend(); ++it) (*it)->Stop();
  if (monitoring) monitoring->Stop();
  if (trust) trust->Stop();
  if (backends.leader) backends.leader->Stop();
  if (backends.bundle_publisher) backends.bundle_publisher->Stop();
  if (controller) controller->Stop();
  if (backends.service_accounts) backends.service_accounts->Stop();
  if (backends.secrets) backends.secrets->Stop();
  // Nothing signs any more: the Authority no longer calls back into the trust manager, which
  // may now go before or after it.
  authority->SetIssuanceGuard(nullptr);
  gauges.clear();            // before the authority and the controller they read go away
  if (audit) audit->Stop();  // last: every producer has stopped, what they said is written
}

void Daemon::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->shutdown = true;
  }
  impl_->cv.notify_all();
}

void Daemon::Wait() {
  Impl& d = *impl_;
  {
    std::unique_lock<std::mutex> lock(d.mu);
    d.cv.wait(lock, [&] { return d.shutdown; });
    if (d.stopped) return;
    d.stopped = true;
  }
  auto log = Logger("daemon");
  log->info("shutting down");
  d.StopAll();
  log->info("stopped");
}

void Daemon::Reload() {
  if (impl_->trust && !impl_->options.self_signed_ca) {
    impl_->trust->ForceFileCheck();
    (void)impl_->trust->Tick();
  } else {
    Logger("daemon")->info("SIGHUP: self-signed CA, nothing to reload; resyncing secrets");
  }
  if (impl_->controller) impl_->controller->RequestResync();
}

bool Daemon::Ready() const { return impl_->Ready(); }

bool Daemon::Impl::Ready() const {
  if (!authority->Bundle()) return false;
  if (leading && !(controller && controller->Synced())) return false;
  for (const auto& c : components) {
    if (!c->Ready()) return false;
  }
  return true;
}

int Daemon::monitoring_port() const { return impl_->monitoring ? impl_->monitoring->port() : 0; }

Result<Backends> MakeLocalBackends(const DaemonOptions& options, const Clock&, MetricsRegistry&) {
  Backends b;
  b.service_accounts = std::make_unique<LocalServiceAccounts>(options.local_dir);
  b.secrets = std::make_unique<LocalSecretStore>(options.local_dir);
  b.ca_store = std::make_unique<LocalCaStore>(options.local_dir + "/ca");
  return b;
}

}  // namespace istioca::ca
