// `istio-ca serve` (also the bare `istio-ca [flags]`): the CA daemon.
//
// Every flag is validated before anything starts; a bad value is one line on stderr and exit 2.
// A plugged-in CA file that cannot be opened is such a bad value. A failure while starting (CA
// files that are not a valid CA, a busy port) is one line and exit 1.
// SIGTERM/SIGINT shut down cleanly (publications are atomic and finish first); SIGHUP re-reads
// plugged-in CA files and resyncs the secrets.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>

#include "base/log.h"
#include "base/metrics.h"
#include "ca/cmd/cli.h"
#include "ca/daemon/audit_log.h"
#include "ca/daemon/daemon.h"

namespace istioca::ca {
namespace {

// A plugged-in CA file that cannot be opened is a bad flag value: one line naming the flag and
// the path, exit 2, before anything starts. Whether the content is a valid CA is checked when
// the daemon loads it (exit 1). Nothing is read here.
Status CheckPluggedFilesReadable(const DaemonOptions& o) {
  for (auto [path, flag] : {std::pair{&o.signing_cert, "--signing-cert"},
                            {&o.signing_key, "--signing-key"},
                            {&o.root_cert, "--root-cert"},
                            {&o.cert_chain, "--cert-chain"}}) {
    if (path->empty()) continue;
    const int fd = open(path->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return InvalidArgument(std::string(flag) + " " + *path + ": " + std::strerror(errno));
    }
    struct stat st {};
    const bool is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    close(fd);
    if (is_dir) return InvalidArgument(std::string(flag) + " " + *path + ": is a directory");
  }
  return OkStatus();
}

// The audit log's directory must exist and the path must not be a directory; the file itself is
// created (0600) when the daemon starts. Nothing is created here.
Status CheckAuditLogPath(const DaemonOptions& o) {
  if (o.audit_log.empty() || o.audit_log == "-") return OkStatus();
  struct stat st {};
  if (stat(o.audit_log.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode))
      return InvalidArgument("--audit-log " + o.audit_log + ": not a regular file");
    return OkStatus();
  }
  const size_t slash = o.audit_log.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : o.audit_log.substr(0, slash);
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgument("--audit-log " + o.audit_log + ": directory " + dir + " does not exist");
  }
  return OkStatus();
}

struct ServeFlags {
  DaemonOptions o;
  bool self_signed = true;
  std::string ca_key_type = "ec-p256", workload_key_type = "ec-p256";
  std::string self_signed_ttl = "87600h", workload_ttl = "24h", max_ttl = "2160h";
  std::string min_grace = "10m", liveness_interval = "0s", probe_check_interval = "30s";
  std::string resync = "1m";
  std::string propagation_delay = "2m", root_check_interval = "1h";
  std::string custom_dns;
  std::string log_level = "info";
  std::string audit_max_size = "100MB", audit_max_files = "5";
  std::string rate_qps = "10", rate_burst = "20", queue_size = "1024", signing_threads = "0",
              review_threads = "16", review_qps = "500", review_burst = "1000";
};

Status Duration(const std::string& flag, const std::string& text, istioca::Duration& out) {
  auto d = ParseDuration(text);
  if (!d.ok()) return InvalidArgument(flag + ": " + d.status().message());
  out = *d;
  return OkStatus();
}

// A whole number within [min, max], parsed here rather than by CLI11 so that "5x", "-1" or "1e3"
// is one line naming the flag, like every other bad value.
Status Whole(const std::string& flag, const std::string& text, int min, int max, int& out) {
  const bool digits = !text.empty() && text.size() <= 9 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoi(text) < min || std::stoi(text) > max) {
    return InvalidArgument(flag + ": \"" + text + "\" is not a whole number within " +
                           std::to_string(min) + ".." + std::to_string(max));
  }
  out = std::stoi(text);
  return OkStatus();
}

// A rate: a finite decimal number within [0, max].
Status Rate(const std::string& flag, const std::string& text, double max, double& out) {
  const bool chars = !text.empty() && text.size() <= 20 &&
                     text.find_first_not_of("0123456789.") == std::string::npos &&
                     std::count(text.begin(), text.end(), '.') <= 1 && text != ".";
  char* end = nullptr;
  const double v = chars ? std::strtod(text.c_str(), &end) : -1;
  if (!chars || end != text.c_str() + text.size() || !(v >= 0 && v <= max)) {
    return InvalidArgument(flag + ": \"" + text + "\" is not a number within 0.." +
                           std::to_string(static_cast<int64_t>(max)));
  }
  out = v;
  return OkStatus();
}

Status Finish(ServeFlags& f, const CLI::App& cmd) {
  DaemonOptions& o = f.o;
  RETURN_IF_ERROR(
      Duration("--self-signed-ca-cert-ttl", f.self_signed_ttl, o.self_signed_ca_cert_ttl));
  RETURN_IF_ERROR(Duration("--workload-cert-ttl", f.workload_ttl, o.workload_cert_ttl));
  RETURN_IF_ERROR(Duration("--max-workload-cert-ttl", f.max_ttl, o.max_workload_cert_ttl));
  RETURN_IF_ERROR(
      Duration("--workload-cert-min-grace-period", f.min_grace, o.workload_cert_min_grace_period));
  RETURN_IF_ERROR(
      Duration("--liveness-probe-interval", f.liveness_interval, o.liveness_probe_interval));
  RETURN_IF_ERROR(
      Duration("--probe-check-interval", f.probe_check_interval, o.probe_check_interval));
  RETURN_IF_ERROR(Duration("--resync-period", f.resync, o.resync_period));
  RETURN_IF_ERROR(
      Duration("--trust-propagation-delay", f.propagation_delay, o.trust_propagation_delay));
  RETURN_IF_ERROR(Duration("--self-signed-root-cert-check-interval", f.root_check_interval,
                           o.self_signed_root_cert_check_interval));
  auto ck = pki::ParseKeyType(f.ca_key_type);
  if (!ck.ok()) return InvalidArgument("--ca-key-type: " + ck.status().message());
  o.ca_key_type = *ck;
  auto wk = pki::ParseKeyType(f.workload_key_type);
  if (!wk.ok()) return InvalidArgument("--workload-key-type: " + wk.status().message());
  o.workload_key_type = *wk;
  auto dns = ParseCustomDnsNames(f.custom_dns);
  if (!dns.ok()) return dns.status();
  o.custom_dns_names = *dns;
  // Istio replaces '@' in the trust domain with '.'.
  for (char& c : o.trust_domain) c = c == '@' ? '.' : c;
  // --self-signed-ca defaults to true unless plugged-in files are given.
  const bool plugged = !o.signing_cert.empty() || !o.signing_key.empty() || !o.root_cert.empty();
  o.self_signed_ca = cmd.count("--self-signed-ca") ? f.self_signed : !plugged;
  // Istio's pkg/log syntax "default:info" is accepted as well as "info".
  std::string level = f.log_level;
  if (const size_t colon = level.rfind(':'); colon != std::string::npos)
    level = level.substr(colon + 1);
  if (level != "debug" && level != "info" && level != "warn" && level != "error" &&
      level != "none") {
    return InvalidArgument("--log_output_level: \"" + f.log_level +
                           "\" is not one of debug, info, warn, error, none");
  }
  o.log_output_level = level;
  auto audit_size = ParseByteSize(f.audit_max_size);
  if (!audit_size.ok())
    return InvalidArgument("--audit-log-max-size: " + audit_size.status().message());
  o.audit_log_max_size = *audit_size;
  // Parsed here, not by CLI11, so that "5x" or "-1" is our one-line error like every other flag.
  const std::string& files = f.audit_max_files;
  if (files.empty() || files.size() > 4 ||
      files.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgument("--audit-log-max-files: \"" + files +
                           "\" is not a whole number within 0.." +
                           std::to_string(kMaxAuditLogFiles));
  }
  o.audit_log_max_files = std::stoi(files);
  RETURN_IF_ERROR(Rate("--csr-rate-limit-qps", f.rate_qps, 1e6, o.csr_rate_limit_qps));
  int burst = 0;
  RETURN_IF_ERROR(Whole("--csr-rate-limit-burst", f.rate_burst, 0, 1000000, burst));
  o.csr_rate_limit_burst = burst;
  RETURN_IF_ERROR(Whole("--csr-queue-size", f.queue_size, 1, 1000000, o.csr_queue_size));
  RETURN_IF_ERROR(Whole("--csr-signing-threads", f.signing_threads, 0, 256, o.csr_signing_threads));
  RETURN_IF_ERROR(
      Whole("--token-review-threads", f.review_threads, 1, 256, o.token_review_threads));
  RETURN_IF_ERROR(Rate("--token-review-qps", f.review_qps, 1e6, o.token_review_qps));
  RETURN_IF_ERROR(Whole("--token-review-burst", f.review_burst, 0, 1000000, o.token_review_burst));
  RETURN_IF_ERROR(ValidateDaemonOptions(o));
  RETURN_IF_ERROR(CheckAuditLogPath(o));
  return CheckPluggedFilesReadable(o);
}

int RunServe(const DaemonOptions& options) {
  if (Status s = ConfigureLogging(options.log_output_level, options.log_as_json); !s.ok()) {
    std::cerr << "istio-ca: " << s.message() << "\n";
    return 2;
  }
  // Signals are taken synchronously by this thread; every thread started later inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto log = Logger("daemon");
  Daemon daemon(options, DefaultDaemonParts(), SystemClock::Get(), MetricsRegistry::Default());
  if (Status s = daemon.Start(); !s.ok()) {
    log->error("start failed error=\"{}\"", s.ToString());
    std::cerr << "istio-ca: " << s.message() << "\n";
    daemon.Shutdown();
    daemon.Wait();
    return 1;
  }
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      log->info("SIGHUP: reloading");
      daemon.Reload();
      continue;
    }
    log->info("signal received, shutting down signal={}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    break;
  }
  daemon.Shutdown();
  daemon.Wait();
  return 0;
}

}  // namespace

void RegisterServe(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<ServeFlags>();
  DaemonOptions& o = f->o;
  CLI::App* cmd = app.add_subcommand(
      "serve", "Run the CA daemon: keep every service account's certificate fresh, serve gRPC");
  cmd->option_defaults()->always_capture_default();
  const char* kId = "Identity";
  const char* kCa = "CA source";
  const char* kWl = "Workload certificates";
  const char* kWhere = "Where";
  const char* kServe = "Serving";
  const char* kLive = "Liveness";
  const char* kLog = "Logging";
  cmd->add_option("--trust-domain", o.trust_domain, "Trust domain of the SPIFFE identities")
      ->group(kId);

  cmd->add_flag(
         "--self-signed-ca", f->self_signed,
         "Use a self-signed root, created once and reused (default unless --signing-cert is given)")
      ->group(kCa);
  cmd->add_option("--self-signed-ca-org", o.self_signed_ca_org,
                  "Organization of the self-signed root (default: the trust domain)")
      ->group(kCa);
  cmd->add_option("--self-signed-ca-cert-ttl", f->self_signed_ttl,
                  "Lifetime of the self-signed root")
      ->group(kCa);
  cmd->add_option("--ca-key-type", f->ca_key_type,
                  "Self-signed root key: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096")
      ->group(kCa);
  cmd->add_option("--trust-propagation-delay", f->propagation_delay,
                  "How long kubelets may take to show a written secret or ConfigMap to pods; a "
                  "new signer activates no sooner after the last bundle write")
      ->group(kCa);
  cmd->add_option("--self-signed-root-cert-grace-period-percentile",
                  o.self_signed_root_cert_grace_period_percentile,
                  "Re-issue the self-signed root (same key) when less than this percent of its "
                  "life remains")
      ->check(CLI::Range(0.0, 100.0))
      ->group(kCa);
  cmd->add_option("--self-signed-root-cert-check-interval", f->root_check_interval,
                  "How often the self-signed root's remaining life is checked")
      ->group(kCa);
  cmd->add_option("--signing-cert", o.signing_cert,
                  "Plugged-in CA: signing certificate (PEM); watched and reloaded")
      ->group(kCa);
  cmd->add_option("--signing-key", o.signing_key, "Plugged-in CA: signing key (PEM)")->group(kCa);
  cmd->add_option("--root-cert", o.root_cert,
                  "Plugged-in CA: root certificate(s) (PEM); all are trusted and published")
      ->group(kCa);
  cmd->add_option("--cert-chain", o.cert_chain,
                  "Plugged-in CA: intermediates between signing cert and root (PEM, optional)")
      ->group(kCa);

  cmd->add_option("--workload-cert-ttl", f->workload_ttl, "Lifetime of workload certificates")
      ->group(kWl);
  cmd->add_option("--max-workload-cert-ttl", f->max_ttl,
                  "Longest TTL a request may ask for (more is an error, not a clamp)")
      ->group(kWl);
  cmd->add_option("--workload-cert-grace-period-ratio", o.workload_cert_grace_period_ratio,
                  "Refresh when this fraction of the lifetime is left, in [0, 1]")
      ->group(kWl);
  cmd->add_option("--workload-cert-min-grace-period", f->min_grace,
                  "Minimum grace period before expiry")
      ->group(kWl);
  cmd->add_option("--workload-key-type", f->workload_key_type,
                  "Workload key: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096")
      ->group(kWl);
  cmd->add_flag("--append-dns-names", o.append_dns_names,
                "Add Istio's webhook DNS names to their service accounts' certificates")
      ->group(kWl);
  cmd->add_option("--custom-dns-names", f->custom_dns, "Extra DNS names: sa.ns:domain,...")
      ->group(kWl);

  cmd->add_option(
         "--local-dir", o.local_dir,
         "Local-directory mode: DIR/serviceaccounts/<ns>/<sa> in, DIR/secrets/<ns>/istio.<sa>/ out")
      ->group(kWhere);
  cmd->add_option("--kube-config", o.kube_config,
                  "Kubernetes: kubeconfig path (empty: in-cluster config)")
      ->group(kWhere);
  cmd->add_option("--listened-namespaces,--listened-namespace", o.listened_namespaces,
                  "Kubernetes: namespaces to watch (empty: all)")
      ->delimiter(',')
      ->group(kWhere);
  cmd->add_option("--istio-ca-storage-namespace,--citadel-storage-namespace", o.storage_namespace,
                  "Namespace of istio-ca-secret and of the webhook service accounts")
      ->group(kWhere);
  cmd->add_option("--kube-api-qps", o.kube_api_qps, "Kubernetes: client request rate limit")
      ->group(kWhere);
  cmd->add_option("--kube-api-burst", o.kube_api_burst, "Kubernetes: client burst")->group(kWhere);
  cmd->add_option("--resync-period", f->resync, "Full reconcile period (level-triggered repair)")
      ->group(kWhere);
  cmd->add_option("--workers", o.workers, "Threads that generate keys, sign and publish")
      ->group(kWhere);

  cmd->add_option("--grpc-port", o.grpc_port, "gRPC CSR service port (0: off)")->group(kServe);
  cmd->add_option("--grpc-host-identities", o.grpc_host_identities,
                  "DNS names in the gRPC server certificate")
      ->delimiter(',')
      ->group(kServe);
  cmd->add_option("--monitoring-port", o.monitoring_port,
                  "/metrics, /healthz, /readyz, /version port (0: off)")
      ->group(kServe);
  cmd->add_option("--token-audiences", o.token_audiences,
                  "Audiences accepted in service-account JWTs")
      ->delimiter(',')
      ->group(kServe);
  cmd->add_option("--csr-rate-limit-qps", f->rate_qps,
                  "CSR calls per second per client (a pod-bound token's pod, else identity and "
                  "address); 0: no limit")
      ->group(kServe);
  cmd->add_option("--csr-rate-limit-burst", f->rate_burst,
                  "CSR calls a client may make at once before the rate applies; 0: no limit")
      ->group(kServe);
  cmd->add_option("--csr-queue-size", f->queue_size,
                  "CSR calls that may wait for signing (and, apart, for a TokenReview); past it "
                  "calls are refused with ResourceExhausted")
      ->group(kServe);
  cmd->add_option("--csr-signing-threads", f->signing_threads,
                  "Threads that verify and sign CSRs (0: one per hardware thread)")
      ->group(kServe);
  cmd->add_option("--token-review-threads", f->review_threads,
                  "Threads that wait on TokenReviews of bearer tokens not in the cache")
      ->group(kServe);
  cmd->add_option("--token-review-qps", f->review_qps,
                  "TokenReviews per second, a client-side limit of their own (not --kube-api-qps); "
                  "0: no limit")
      ->group(kServe);
  cmd->add_option("--token-review-burst", f->review_burst,
                  "TokenReviews sent at once before --token-review-qps applies")
      ->group(kServe);

  cmd->add_option("--liveness-probe-path", o.liveness_probe_path,
                  "File touched while the periodic self-issuance succeeds")
      ->group(kLive);
  cmd->add_option("--liveness-probe-interval", f->liveness_interval,
                  "How fresh the liveness file is kept (0: off)")
      ->group(kLive);
  cmd->add_option("--probe-check-interval", f->probe_check_interval,
                  "Interval of the self-issuance check")
      ->group(kLive);

  cmd->add_option("--log_output_level", f->log_level, "debug, info, warn, error or none")
      ->group(kLog);
  cmd->add_flag("--log_as_json", o.log_as_json, "One JSON object per log line")->group(kLog);
  cmd->add_option("--audit-log", o.audit_log,
                  "JSON lines of every issuance, refusal, secret write and trust change, to this "
                  "file (0600) or - for stdout (default: off)")
      ->group(kLog);
  cmd->add_option("--audit-log-max-size", f->audit_max_size,
                  "Rotate the audit log at this size (e.g. 100MB, 512KB, 10MiB)")
      ->group(kLog);
  cmd->add_option("--audit-log-max-files", f->audit_max_files,
                  "Rotated audit log files kept (PATH.1 .. PATH.N)")
      ->group(kLog);

  cmd->callback([f, cmd, &ctx] {
    if (Status s = Finish(*f, *cmd); !s.ok()) {
      std::cerr << "istio-ca: " << s.message() << "\n";
      ctx.exit_code = 2;
      return;
    }
    ctx.exit_code = RunServe(f->o);
  });
}

}  // namespace istioca::ca
