#include "ca/daemon/daemon.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <fstream>

#include "base/log.h"
#include "ca/core/ca_loader.h"
#include "ca/daemon/liveness.h"
#include "ca/daemon/monitoring.h"
#include "ca/local/ca_store.h"
#include "ca/local/local_backend.h"

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
  if (o.probe_check_interval <= Duration::zero())
    return bad("--probe-check-interval must be positive");
  if (o.resync_period < std::chrono::seconds(1)) return bad("--resync-period must be at least 1s");
  if (o.workers < 1 || o.workers > 64) return bad("--workers must be within 1..64");
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

struct Daemon::Impl {
  Impl(DaemonOptions o, DaemonParts p, const Clock& c, MetricsRegistry& m)
      : options(std::move(o)), parts(std::move(p)), clock(c), metrics(m) {}

  DaemonOptions options;
  DaemonParts parts;
  const Clock& clock;
  MetricsRegistry& metrics;
  Backends backends;
  std::unique_ptr<Controller> controller;
  std::unique_ptr<CaReloader> reloader;
  std::unique_ptr<MonitoringServer> monitoring;
  std::unique_ptr<LivenessProber> liveness;
  std::unique_ptr<DaemonContext> context;
  std::vector<std::unique_ptr<DaemonComponent>> components;
  std::atomic<bool> leading{false};
  std::mutex mu;
  std::condition_variable cv;
  bool shutdown = false;
  bool stopped = false;
};

Daemon::Daemon(DaemonOptions options, DaemonParts parts, const Clock& clock,
               MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(parts), clock, metrics)),
      authority_(std::make_unique<Authority>(impl_->options.Policy(), clock)) {}

Daemon::~Daemon() {
  Shutdown();
  Wait();
}

Status Daemon::Start() {
  Impl& d = *impl_;
  const DaemonOptions& o = d.options;
  auto log = Logger("daemon");

  // Backends.
  const BackendFactory& factory = o.LocalMode() ? d.parts.local_backends : d.parts.kube_backends;
  if (!factory) {
    return FailedPrecondition(
        "Kubernetes mode is not available in this build; pass --local-dir DIR");
  }
  ASSIGN_OR_RETURN(d.backends, factory(o, d.metrics));

  // The CA.
  if (o.self_signed_ca) {
    if (!d.backends.ca_store) return FailedPrecondition("this backend has no CA store");
    SelfSignedOptions ss{o.self_signed_ca_org.empty() ? o.trust_domain : o.self_signed_ca_org,
                         o.self_signed_ca_cert_ttl, o.ca_key_type};
    ASSIGN_OR_RETURN(auto bundle, LoadOrCreateSelfSigned(*d.backends.ca_store, ss, d.clock.Now()));
    authority_->SetBundle(bundle);
  } else {
    d.reloader = std::make_unique<CaReloader>(
        *authority_, PluggedCaFiles{o.signing_cert, o.signing_key, o.root_cert, o.cert_chain},
        d.clock, d.metrics, [this] {
          if (impl_->controller) impl_->controller->RequestResync();
        });
    RETURN_IF_ERROR(d.reloader->LoadInitial());
  }

  // Metrics about the CA, evaluated at scrape time.
  Authority* authority = authority_.get();
  d.metrics.SetGaugeFunction("citadel_server_root_cert_expiry_timestamp",
                             "The unix timestamp, in seconds, when the root cert will expire.", {},
                             [authority] {
                               auto b = authority->Bundle();
                               if (!b || b->roots.empty()) return std::nan("");
                               TimePoint t = b->roots[0].NotAfter();
                               for (const auto& r : b->roots) t = std::min(t, r.NotAfter());
                               return Seconds(t);
                             });
  d.metrics.SetGaugeFunction("citadel_server_cert_chain_expiry_timestamp",
                             "The unix timestamp, in seconds, when the CA cert chain will expire.",
                             {}, [authority] {
                               auto b = authority->Bundle();
                               if (!b) return std::nan("");
                               TimePoint t = b->signer.cert.NotAfter();
                               for (const auto& c : b->chain) t = std::min(t, c.NotAfter());
                               return Seconds(t);
                             });
  d.metrics.SetGaugeFunction("process_resident_memory_bytes", "Resident memory size in bytes.", {},
                             [] { return ResidentBytes(); });

  // The controller, on the backends.
  ControllerOptions co;
  co.rotation = o.Rotation();
  co.workload_ttl = o.workload_cert_ttl;
  co.storage_namespace = o.storage_namespace;
  co.resync_period = o.resync_period;
  co.workers = o.workers;
  d.controller = std::make_unique<Controller>(*authority_, *d.backends.service_accounts,
                                              *d.backends.secrets, d.clock, d.metrics, co);
  Controller* controller = d.controller.get();
  const Clock* clock = &d.clock;
  d.metrics.SetGaugeFunction(
      "istio_ca_workload_cert_earliest_expiry_seconds",
      "Seconds until the first managed workload certificate expires if the CA stopped now "
      "(NaN when none is managed).",
      {}, [controller, clock] {
        auto t = controller->EarliestExpiry();
        if (!t) return std::nan("");
        return std::chrono::duration<double>(*t - clock->Now()).count();
      });
  d.metrics.SetGaugeFunction(
      "istio_ca_workload_secrets_managed", "Workload secrets the controller currently manages.", {},
      [controller] { return static_cast<double>(controller->ManagedCount()); });
  d.backends.service_accounts->SetHandler(
      [controller](const ServiceAccountKey& k) { controller->Notify(k); });
  d.backends.secrets->SetHandler(
      [controller](const ServiceAccountKey& k) { controller->Notify(k); });
  RETURN_IF_ERROR(d.backends.secrets->Start());
  RETURN_IF_ERROR(d.backends.service_accounts->Start());
  if (d.backends.leader) {
    RETURN_IF_ERROR(d.backends.leader->Start([this, controller](bool leading) {
      impl_->leading = leading;
      Logger("daemon")->info("leadership changed leading={}", leading);
      leading ? controller->Start() : controller->Stop();
    }));
  } else {
    d.leading = true;
    controller->Start();
  }
  if (d.reloader) d.reloader->Start();

  // Monitoring.
  if (o.monitoring_port != 0) {
    d.monitoring = std::make_unique<MonitoringServer>(d.metrics, [this] {
      Readiness r;
      r.ready = Ready();
      auto b = authority_->Bundle();
      r.detail = std::string("ca=") + (b ? "loaded" : "missing") + " controller=" +
                 (!impl_->leading               ? "standby"
                  : impl_->controller->Synced() ? "synced"
                                                : "syncing");
      for (const auto& c : impl_->components) {
        r.detail += " " + c->Name() + "=" + (c->Ready() ? "ready" : "not-ready");
      }
      return r;
    });
    RETURN_IF_ERROR(d.monitoring->Start("0.0.0.0", o.monitoring_port));
  }

  // Extra components (gRPC service, ...).
  d.context = std::make_unique<DaemonContext>(
      DaemonContext{d.options, *authority_, d.metrics, d.clock, d.backends.token_reviewer});
  for (const ComponentFactory& make : d.parts.components) {
    ASSIGN_OR_RETURN(std::unique_ptr<DaemonComponent> c, make(*d.context));
    if (c == nullptr) continue;  // the component is off for these options
    Status s = c->Start();
    if (!s.ok()) return s.WithContext("starting " + c->Name());
    log->info("started component name={}", c->Name());
    d.components.push_back(std::move(c));
  }
  // Liveness, last: its check goes through the components (the gRPC server).
  if (!o.liveness_probe_path.empty()) {
    auto check = [this] {
      const Duration timeout = std::clamp<Duration>(
          impl_->options.probe_check_interval, std::chrono::seconds(1), std::chrono::seconds(10));
      // At least a minute: certificate times have whole seconds, so a self-issued certificate
      // with a sub-second TTL would already be expired when verified.
      RETURN_IF_ERROR(SelfCheck(
          *authority_,
          LivenessIdentity(impl_->options.trust_domain, impl_->options.storage_namespace),
          std::max<Duration>(impl_->options.probe_check_interval, std::chrono::minutes(1))));
      for (const auto& c : impl_->components) {
        if (Status s = c->LivenessCheck(timeout); !s.ok()) return s.WithContext(c->Name());
      }
      return OkStatus();
    };
    d.liveness = std::make_unique<LivenessProber>(
        check, o.liveness_probe_path, o.liveness_probe_interval, o.probe_check_interval, d.metrics);
    d.liveness->Start();
  }
  log->info("istio-ca started mode={} trust_domain={} ca={}",
            o.LocalMode() ? "local" : "kubernetes", o.trust_domain,
            o.self_signed_ca ? "self-signed" : "plugged-in");
  return OkStatus();
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
  // Reverse order of start. The controller finishes in-flight publications before returning,
  // and every publication is atomic, so nothing is left half-written.
  if (d.liveness) d.liveness->Stop();  // before the components its check calls
  for (auto it = d.components.rbegin(); it != d.components.rend(); ++it) (*it)->Stop();
  if (d.monitoring) d.monitoring->Stop();
  if (d.reloader) d.reloader->Stop();
  if (d.backends.leader) d.backends.leader->Stop();
  if (d.controller) d.controller->Stop();
  if (d.backends.service_accounts) d.backends.service_accounts->Stop();
  if (d.backends.secrets) d.backends.secrets->Stop();
  log->info("stopped");
}

void Daemon::Reload() {
  if (impl_->reloader) {
    impl_->reloader->CheckNow(true);
  } else {
    Logger("daemon")->info("SIGHUP: self-signed CA, nothing to reload; resyncing secrets");
  }
  if (impl_->controller) impl_->controller->RequestResync();
}

bool Daemon::Ready() const {
  const Impl& d = *impl_;
  if (!authority_->Bundle()) return false;
  if (d.leading && !(d.controller && d.controller->Synced())) return false;
  for (const auto& c : d.components) {
    if (!c->Ready()) return false;
  }
  return true;
}

int Daemon::monitoring_port() const { return impl_->monitoring ? impl_->monitoring->port() : 0; }

Result<Backends> MakeLocalBackends(const DaemonOptions& options, MetricsRegistry&) {
  Backends b;
  b.service_accounts = std::make_unique<LocalServiceAccounts>(options.local_dir);
  b.secrets = std::make_unique<LocalSecretStore>(options.local_dir);
  b.ca_store = std::make_unique<LocalCaStore>(options.local_dir + "/ca");
  return b;
}

}  // namespace istioca::ca
