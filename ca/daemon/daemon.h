// ca/daemon.h — the CA daemon (`istio-ca serve`): options, backends, pluggable components.
//
// The daemon loads the CA (ca/ca_loader.h), starts the secret controller on the chosen
// backends, the monitoring server, the liveness self-check, and any extra components (the gRPC
// service, leader election, ...), then waits for Shutdown() (SIGTERM/SIGINT). Which backends
// and components exist is decided in one place, ca/daemon_parts.cc, so that the Kubernetes and
// gRPC areas plug in by adding a line there instead of rewriting the daemon.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/metrics.h"
#include "base/status.h"
#include "base/time.h"
#include "ca/controller/controller.h"
#include "ca/core/authority.h"
#include "ca/core/ca_store.h"
#include "ca/core/events.h"
#include "ca/grpc/authn.h"
#include "pki/key.h"
#include "pki/spiffe.h"

namespace istioca::ca {

// Every `istio-ca serve` flag, parsed and validated (ValidateDaemonOptions) before anything
// starts. Defaults are DESIGN.md's.
struct DaemonOptions {
  // Identity.
  std::string trust_domain = "cluster.local";
  // CA source: self-signed (persisted through a CaStore) unless signing_cert is set.
  bool self_signed_ca = true;
  std::string self_signed_ca_org;  // empty: the trust domain
  Duration self_signed_ca_cert_ttl = std::chrono::hours(87600);
  pki::KeyType ca_key_type = pki::KeyType::kEcP256;
  std::string signing_cert, signing_key, root_cert, cert_chain;  // plugged-in files
  // Trust lifecycle (DESIGN "Trust lifecycle").
  Duration trust_propagation_delay = std::chrono::minutes(2);
  double self_signed_root_cert_grace_period_percentile = 20;
  Duration self_signed_root_cert_check_interval = std::chrono::hours(1);
  // Workload certificates.
  Duration workload_cert_ttl = std::chrono::hours(24);
  Duration max_workload_cert_ttl = std::chrono::hours(2160);
  double workload_cert_grace_period_ratio = 0.5;
  Duration workload_cert_min_grace_period = std::chrono::minutes(10);
  pki::KeyType workload_key_type = pki::KeyType::kEcP256;
  bool append_dns_names = true;
  std::map<std::string, std::vector<std::string>> custom_dns_names;  // "sa.ns" → names
  // Where: local directory, or Kubernetes (kube_config empty = in-cluster).
  std::string local_dir;
  std::string kube_config;
  std::vector<std::string> listened_namespaces;  // empty: all
  std::string storage_namespace = "istio-system";
  double kube_api_qps = 20;
  int kube_api_burst = 40;
  // Serving.
  int grpc_port = 8060;  // 0: off
  std::vector<std::string> grpc_host_identities = {"istio-ca", "istio-citadel"};
  int monitoring_port = 15014;  // 0: off
  std::vector<std::string> token_audiences = {"istio-ca"};
  // gRPC admission and rate limits (ca/grpc/policy.h GrpcLimits).
  double csr_rate_limit_qps = 10;    // per client; 0 (or burst 0): no limit
  double csr_rate_limit_burst = 20;  // per client
  int csr_queue_size = 1024;         // calls waiting, per queue
  int csr_signing_threads = 0;       // 0: hardware threads
  int token_review_threads = 16;
  // TokenReviews have a client-side rate limit of their own: they cost the API server no storage,
  // and under --kube-api-qps a pod-start stampede of 1,000 new tokens waited ~48 s on it.
  double token_review_qps = 500;  // 0: no limit
  int token_review_burst = 1000;
  // Liveness.
  std::string liveness_probe_path;
  Duration liveness_probe_interval{};  // 0: off
  Duration probe_check_interval = std::chrono::seconds(30);
  // Logging.
  std::string log_output_level = "info";
  bool log_as_json = false;
  // Audit log (ca/daemon/audit_log.h): empty = off, "-" = stdout.
  std::string audit_log;
  uint64_t audit_log_max_size = 100ull * 1000 * 1000;
  int audit_log_max_files = 5;
  // Controller tuning (ours).
  Duration resync_period = std::chrono::minutes(1);
  int workers = 2;

  bool LocalMode() const { return !local_dir.empty(); }
  IssuancePolicy Policy() const;
  RotationPolicy Rotation() const;
};

// Checks cross-field rules; the message is one line naming the flag.
Status ValidateDaemonOptions(const DaemonOptions& options);
// Parses "sa.ns:domain,sa2.ns2:domain2" (--custom-dns-names).
Result<std::map<std::string, std::vector<std::string>>> ParseCustomDnsNames(std::string_view text);

struct Backends {
  std::unique_ptr<ServiceAccountSource> service_accounts;
  std::unique_ptr<SecretStore> secrets;
  std::unique_ptr<CaStore> ca_store;                  // used in self-signed mode
  std::shared_ptr<TokenReviewer> token_reviewer;      // null in local mode
  std::unique_ptr<LeaderElector> leader;              // null: always leading
  std::unique_ptr<BundlePublisher> bundle_publisher;  // null in local mode
};

// What a component gets from the daemon. References stay valid until the component is stopped.
struct DaemonContext {
  const DaemonOptions& options;
  Authority& authority;  // sign through this; it always has the current bundle
  MetricsRegistry& metrics;
  const Clock& clock;
  std::shared_ptr<TokenReviewer> token_reviewer;  // null in local mode
  // Issuances, refusals, secret writes and trust changes go here (ca/core/events.h): the audit
  // log and the status page's recent lists read them.
  EventSink& events;
};

// A part of the daemon with its own lifecycle (gRPC server, ...). Started after the CA is
// loaded, stopped in reverse order on shutdown.
class DaemonComponent {
 public:
  virtual ~DaemonComponent() = default;
  virtual std::string Name() const = 0;
  virtual Status Start() = 0;
  virtual void Stop() = 0;
  // Counted by /readyz.
  virtual bool Ready() const { return true; }
  // Part of the periodic liveness self-check (--probe-check-interval): an error removes the
  // liveness file. `timeout` bounds the check.
  virtual Status LivenessCheck(Duration timeout) {
    (void)timeout;
    return OkStatus();
  }
};

// The daemon's clock reaches the backends through here (lease and token timing).
using BackendFactory =
    std::function<Result<Backends>(const DaemonOptions&, const Clock&, MetricsRegistry&)>;
using ComponentFactory = std::function<Result<std::unique_ptr<DaemonComponent>>(DaemonContext&)>;

// The plug-in table filled by ca/daemon_parts.cc.
struct DaemonParts {
  BackendFactory local_backends;  // --local-dir
  BackendFactory kube_backends;   // otherwise
  std::vector<ComponentFactory> components;
};
DaemonParts DefaultDaemonParts();  // ca/daemon_parts.cc

class Daemon {
 public:
  Daemon(DaemonOptions options, DaemonParts parts, const Clock& clock, MetricsRegistry& metrics);
  ~Daemon();

  // Loads the CA, starts everything. Any failure is returned (nothing left running).
  Status Start();
  // Blocks until Shutdown() is called (from a signal handler thread) then stops everything.
  void Wait();
  // Async-signal-unsafe; call from a normal thread. Idempotent.
  void Shutdown();
  // Re-reads plugged-in CA files now (SIGHUP).
  void Reload();

  bool Ready() const;
  Authority& authority() { return *authority_; }
  int monitoring_port() const;  // bound port, 0 when off

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<Authority> authority_;
};

}  // namespace istioca::ca
