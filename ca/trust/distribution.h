// ca/trust/distribution.h — what the trust bundle looks like where consumers read it.
//
// Promises: the exact shape of the `istio-ca-root-cert` ConfigMap that istio-agent mounts, and
// the bundle text itself, as plain values (no Kubernetes client here; ca/kube writes them).
//
// Istio's format, checked in its source (istio/istio):
// - pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go: name
//   `CACertNamespaceConfigMap = "istio-ca-root-cert"`, one per namespace (kube-system included in
//   modern versions; other injection-ignored namespaces skipped, terminating namespaces skipped);
//   labels `configMapLabel = {"istio.io/config": "true"}`; no annotations; the data is
//   `{constants.CACertNamespaceConfigMapDataName: <root bundle PEM>}` where the data name is
//   "root-cert.pem" (pkg/config/constants). istio-agent reads the mounted ConfigMap as
//   `CitadelCACertPath` + that name = `./var/run/secrets/istio/root-cert.pem` (pkg/istio-agent).
//   The controller runs on the elected leader only (leaderelection.NamespaceController), and
//   re-lists every namespace when the CA bundle changes (one write per differing ConfigMap).
// - security/pkg/k8s/configutil.go `InsertDataToConfigMap`: create when absent (NotFound on
//   create = namespace gone, ignored); otherwise merge the keys into the existing data and Update
//   only when a value differs (foreign keys and labels in the object are kept, not removed).
//   A deleted ConfigMap is re-created on its delete event.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace istioca::ca::trust {

inline constexpr char kRootCertConfigMapName[] = "istio-ca-root-cert";
inline constexpr char kRootCertConfigMapKey[] = "root-cert.pem";
inline constexpr char kRootCertConfigMapLabel[] = "istio.io/config";
inline constexpr char kRootCertConfigMapLabelValue[] = "true";

// The bundle as consumers read it: the roots' PEM, concatenated in bundle order.
std::string BundlePem(const std::vector<std::string>& root_pems);

struct RootCertConfigMap {
  std::string name;  // istio-ca-root-cert
  std::string namespace_name;
  std::map<std::string, std::string> labels;  // {"istio.io/config": "true"}
  std::map<std::string, std::string> data;    // {"root-cert.pem": bundle}
};

// The ConfigMap istiod would publish in `namespace_name` for `bundle_pem`.
RootCertConfigMap BuildRootCertConfigMap(const std::string& namespace_name,
                                         const std::string& bundle_pem);

}  // namespace istioca::ca::trust
