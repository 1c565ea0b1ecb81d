// ca/liveness.h — the liveness file (Istio's --liveness-probe-path mechanism).
//
// Every --probe-check-interval the daemon runs its check (ca/daemon.cc): the CA issues itself a
// short-lived certificate through the same Authority the controller uses and verifies it against
// the published roots; then, when --grpc-port is on, a CSR goes over TLS to the CA's own gRPC
// port, as Istio's checker did (GrpcServer::SelfCheck), so a wedged gRPC server fails liveness.
// While the last check passed, the file is touched every --liveness-probe-interval / 2; when a
// check fails it is removed, and on shutdown too. `istio-ca probe --probe-path F --interval D`
// (the exec probe) exits 0 iff F was touched within D.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "base/metrics.h"
#include "base/periodic.h"
#include "base/status.h"
#include "base/time.h"
#include "ca/core/authority.h"

namespace istioca::ca {

// The one identity of every liveness self-check (the in-process issuance and the gRPC CSR):
// spiffe://<trust-domain>/ns/<storage-namespace>/sa/istio-ca-liveness.
std::string LivenessIdentity(const std::string& trust_domain, const std::string& storage_namespace);

// One self-issuance for `identity`: key, sign, verify against the roots at clock.Now().
Status SelfCheck(const Authority& authority, const std::string& identity, Duration ttl);

// Exit status of the probe: OK iff `path` exists and its mtime is within `interval` of `now`.
Status CheckProbeFile(const std::string& path, Duration interval, TimePoint now);

class LivenessProber {
 public:
  // `check` is the self-check run every `check_interval`; an error removes the file.
  LivenessProber(std::function<Status()> check, std::string path, Duration touch_interval,
                 Duration check_interval, MetricsRegistry& metrics);
  ~LivenessProber();
  void Start();
  void Stop();  // removes the file
  // One check and the file update that follows it (tests).
  bool RunOnce();

 private:
  const std::function<Status()> check_;
  const std::string path_;
  const Duration touch_interval_;
  const Duration check_interval_;
  Counter& failures_;
  bool healthy_ = true;  // used by the prober thread (and RunOnce in tests) only
  PeriodicThread thread_;
};

}  // namespace istioca::ca
