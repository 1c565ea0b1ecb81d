#include "ca/daemon/liveness.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/files.h"
#include "base/log.h"
#include "pki/key.h"
#include "pki/verify.h"

namespace istioca::ca {

std::string LivenessIdentity(const std::string& trust_domain,
                             const std::string& storage_namespace) {
  return "spiffe://" + trust_domain + "/ns/" + storage_namespace + "/sa/istio-ca-liveness";
}

Status SelfCheck(const Authority& authority, const std::string& identity, Duration ttl) {
  ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  ttl = std::min(ttl, authority.policy().max_ttl);
  ASSIGN_OR_RETURN(IssuedCert cert, authority.Sign(key.get(), {identity}, {}, ttl));
  auto path = pki::VerifyChain(cert.leaf, cert.intermediates, cert.roots, authority.clock().Now());
  if (!path.ok()) return path.status().WithContext("self-issued certificate does not verify");
  return OkStatus();
}

Status CheckProbeFile(const std::string& path, Duration interval, TimePoint now) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return Unavailable("probe file " + path + ": " + std::strerror(errno));
  }
  const TimePoint mtime = TimePoint(std::chrono::duration_cast<Duration>(
      std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
  // Istio allows 10 ms of slack for the file system's timestamp granularity.
  if (now - mtime > interval + std::chrono::milliseconds(10)) {
    return Unavailable("probe file " + path + " was last updated " + FormatDuration(now - mtime) +
                       " ago, more than " + FormatDuration(interval));
  }
  return OkStatus();
}

LivenessProber::LivenessProber(std::function<Status()> check, std::string path,
                               Duration touch_interval, Duration check_interval,
                               MetricsRegistry& metrics)
    : check_(std::move(check)),
      path_(std::move(path)),
      touch_interval_(touch_interval),
      check_interval_(check_interval),
      failures_(metrics.GetCounter("istio_ca_liveness_check_failures_total",
                                   "Periodic self-issuance checks that failed.")) {}

LivenessProber::~LivenessProber() { Stop(); }

bool LivenessProber::RunOnce() {
  Status s = check_();
  auto log = Logger("liveness");
  if (!s.ok()) {
    failures_.Inc();
    if (healthy_)
      log->error("liveness self-check failed; removing probe file path={} error=\"{}\"", path_,
                 s.ToString());
    healthy_ = false;
    unlink(path_.c_str());
    return false;
  }
  if (!healthy_) log->info("liveness self-check recovered path={}", path_);
  healthy_ = true;
  Status w = WriteFileAtomic(path_, "ok\n");
  if (!w.ok()) log->warn("cannot update probe file path={} error=\"{}\"", path_, w.ToString());
  return true;
}

void LivenessProber::Start() {
  if (thread_.running()) return;
  // Touch every interval/2 while healthy; run the self-check every check_interval (first at once).
  const Duration touch = std::max<Duration>(touch_interval_ / 2, std::chrono::milliseconds(100));
  auto next_check = std::chrono::steady_clock::now();
  thread_.Start(Duration::zero(), [this, touch, next_check]() mutable {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_check) {
      RunOnce();
      next_check =
          now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(check_interval_);
    } else if (healthy_) {
      Status w = WriteFileAtomic(path_, "ok\n");
      (void)w;  // a failed touch shows as a stale file; RunOnce logs write failures
    }
    return std::min(touch, std::chrono::duration_cast<Duration>(next_check - now));
  });
}

void LivenessProber::Stop() {
  const bool was_running = thread_.running();
  thread_.Stop();
  if (was_running) unlink(path_.c_str());
}

}  // namespace istioca::ca
