// ca/daemon_parts.cc — the one place that decides which backends and components the daemon has.
//
// Other areas plug in here with one line each, without touching the daemon:
//   Kubernetes (issue 4): parts.kube_backends = MakeKubernetesBackends;
//       Result<Backends> MakeKubernetesBackends(const DaemonOptions&, const Clock&,
//                                               MetricsRegistry&);
//   gRPC (issue 5):       parts.components.push_back(MakeGrpcComponent);
//       Result<std::unique_ptr<DaemonComponent>> MakeGrpcComponent(DaemonContext&);
//       (return nullptr when --grpc-port is 0)
#include "ca/daemon/daemon.h"
#include "ca/grpc/server.h"

namespace istioca::ca {

Result<Backends> MakeLocalBackends(const DaemonOptions& options, const Clock& clock,
                                   MetricsRegistry& metrics);
Result<Backends> MakeKubernetesBackends(const DaemonOptions& options, const Clock& clock,
                                        MetricsRegistry& metrics);  // kube_assembly.cc

DaemonParts DefaultDaemonParts() {
  DaemonParts parts;
  parts.local_backends = MakeLocalBackends;
  parts.components.push_back(MakeGrpcComponent);  // ca/grpc_server.cc; null when --grpc-port 0
  parts.kube_backends = MakeKubernetesBackends;
  return parts;
}

}  // namespace istioca::ca
