// ca/trust/distribution.cc — the istio-ca-root-cert ConfigMap and bundle text.
#include "ca/trust/distribution.h"

namespace istioca::ca::trust {

std::string BundlePem(const std::vector<std::string>& root_pems) {
  std::string out;
  for (const std::string& pem : root_pems) {
    out += pem;
    if (!pem.empty() && pem.back() != '\n') out += '\n';
  }
  return out;
}

RootCertConfigMap BuildRootCertConfigMap(const std::string& namespace_name,
                                         const std::string& bundle_pem) {
  return {kRootCertConfigMapName,
          namespace_name,
          {{kRootCertConfigMapLabel, kRootCertConfigMapLabelValue}},
          {{kRootCertConfigMapKey, bundle_pem}}};
}

}  // namespace istioca::ca::trust
