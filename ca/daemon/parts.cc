// ca/daemon/parts.cc — the one place that decides which backends and components the daemon has:
// local files (daemon.cc) or the Kubernetes API (kube_assembly.cc) for the backends, and the gRPC
// service (grpc_component.cc; none when --grpc-port is 0).
#include "ca/daemon/daemon.h"

namespace istioca::ca {

Result<Backends> MakeLocalBackends(const DaemonOptions& options, const Clock& clock,
                                   MetricsRegistry& metrics);
Result<Backends> MakeKubernetesBackends(const DaemonOptions& options, const Clock& clock,
                                        MetricsRegistry& metrics);  // kube_assembly.cc
Result<std::unique_ptr<DaemonComponent>> MakeGrpcComponent(
    DaemonContext& ctx);  // grpc_component.cc

DaemonParts DefaultDaemonParts() {
  DaemonParts parts;
  parts.local_backends = MakeLocalBackends;
  parts.components.push_back(MakeGrpcComponent);  // null when --grpc-port 0
  parts.kube_backends = MakeKubernetesBackends;
  return parts;
}

}  // namespace istioca::ca
