#include "ca/kube/ca_store.h"

#include "k8s/objects.h"

namespace istioca::ca {

Result<StoredCa> KubeCaStore::Load() const {
  auto s = k8s::GetSecret(*api_, ns_, kCaSecretName);
  if (!s.ok()) return s.status();
  auto get = [&](const char* k) {
    auto it = s->data.find(k);
    return it == s->data.end() ? std::string() : it->second;
  };
  StoredCa ca{get(kCaCertKey), get(kCaKeyKey), get(kRootCertKey), get(kCertChainKey)};
  // Istio 0.x wrote only ca-cert.pem and ca-key.pem: the CA cert is then the root.
  if (ca.root_cert_pem.empty()) ca.root_cert_pem = ca.ca_cert_pem;
  if (ca.ca_cert_pem.empty() || ca.ca_key_pem.empty()) {
    return FailedPrecondition("secret " + ns_ + "/" + kCaSecretName +
                              " lacks ca-cert.pem or ca-key.pem");
  }
  return ca;
}

Status KubeCaStore::Create(const StoredCa& ca) {
  k8s::Secret s;
  s.meta.name = kCaSecretName;
  s.meta.ns = ns_;
  s.type = kCaSecretType;
  s.data[kCaCertKey] = ca.ca_cert_pem;
  s.data[kCaKeyKey] = ca.ca_key_pem;
  s.data[kRootCertKey] = ca.root_cert_pem;
  s.data[kCertChainKey] = ca.cert_chain_pem;
  // AlreadyExists goes back as is: the loser of a creation race loads the winner's CA.
  return k8s::CreateSecret(*api_, s).status();
}

Result<StoredRecord> KubeCaStore::LoadRecord() const {
  ASSIGN_OR_RETURN(k8s::Secret s, k8s::GetSecret(*api_, ns_, kCaSecretName));
  return StoredRecord{std::move(s.data), s.meta.resource_version};
}

Status KubeCaStore::StoreRecord(const std::map<std::string, std::string>& data,
                                const std::string& expected_version) {
  k8s::Secret s;
  s.meta.name = kCaSecretName;
  s.meta.ns = ns_;
  s.type = kCaSecretType;
  s.data = data;
  if (expected_version.empty()) {
    Status created = k8s::CreateSecret(*api_, s).status();
    if (created.code() == Code::kAlreadyExists) {
      return Status(Code::kAborted,
                    "secret " + ns_ + "/" + kCaSecretName + " was created by another writer");
    }
    return created;
  }
  s.meta.resource_version = expected_version;
  return k8s::UpdateSecret(*api_, s).status();  // 409 Conflict maps to kAborted
}

}  // namespace istioca::ca
