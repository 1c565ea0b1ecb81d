// ca/daemon_parts.cc — the one place that decides which backends and components the daemon has.
//
// Other areas plug in here with one line each, without touching the daemon:
//   Kubernetes (issue 4): parts.kube_backends = MakeKubernetesBackends;
//       Result<Backends> MakeKubernetesBackends(const DaemonOptions&, MetricsRegistry&);
//   gRPC (issue 5):       parts.components.push_back(MakeGrpcComponent);
//       Result<std::unique_ptr<DaemonComponent>> MakeGrpcComponent(DaemonContext&);
//       (return nullptr when --grpc-port is 0)
#include "ca/daemon/daemon.h"

namespace istioca::ca {

Result<Backends> MakeLocalBackends(const DaemonOptions& options, MetricsRegistry& metrics);
Result<Backends> MakeKubernetesBackends(const DaemonOptions& options,
                                        MetricsRegistry& metrics);  // ca/kube_backends.cc
Result<std::unique_ptr<DaemonComponent>> MakeGrpcComponent(
    DaemonContext& ctx);  // ca/daemon/grpc_component.cc

DaemonParts DefaultDaemonParts() {
  DaemonParts parts;
  parts.local_backends = MakeLocalBackends;
  parts.components.push_back(MakeGrpcComponent);  // null when --grpc-port 0
  parts.kube_backends = MakeKubernetesBackends;
  return parts;
}

}  // namespace istioca::ca
