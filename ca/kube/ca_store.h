// ca/kube/ca_store.h — the CA's own Secret `istio-ca-secret` (type istio.io/ca-root) in the
// storage namespace: where a self-signed CA is kept so that every replica uses one root.
#pragma once

#include <memory>
#include <string>

#include "ca/controller/backends.h"  // kRootCertKey, kCertChainKey: the same data keys
#include "ca/core/ca_store.h"
#include "k8s/api.h"

namespace istioca::ca {

class KubeCaStore final : public CaStore {
 public:
  KubeCaStore(std::shared_ptr<k8s::Api> api, std::string ns)
      : api_(std::move(api)), ns_(std::move(ns)) {}
  Result<StoredCa> Load() const override;
  // AlreadyExists is returned as is: the loser of a creation race loads the winner's CA.
  Status Create(const StoredCa& ca) override;
  // The secret's data with its resourceVersion; StoreRecord is an Update with that
  // resourceVersion (409 Conflict → kAborted), or a Create when `expected_version` is empty
  // and nothing is stored (AlreadyExists → kAborted).
  Result<StoredRecord> LoadRecord() const override;
  Status StoreRecord(const std::map<std::string, std::string>& data,
                     const std::string& expected_version) override;

 private:
  std::shared_ptr<k8s::Api> api_;
  std::string ns_;
};

}  // namespace istioca::ca
