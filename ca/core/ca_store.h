// ca/ca_store.h — where the self-signed CA persists, so that a restart keeps the root.
//
// Local mode keeps it in DIR/ca/ (ca/local/ca_store.h); Kubernetes keeps it in the Secret
// `istio-ca-secret` (type istio.io/ca-root) in the storage namespace. The store holds PEM text
// only; ca/ca_loader.h turns it into a validated CaBundle.
#pragma once

#include <map>
#include <string>

#include "base/status.h"

namespace istioca::ca {

// The data of `istio-ca-secret` (and of DIR/ca/): Istio's key names.
struct StoredCa {
  std::string ca_cert_pem;     // ca-cert.pem: the signing certificate
  std::string ca_key_pem;      // ca-key.pem: its key (never logged)
  std::string root_cert_pem;   // root-cert.pem: every trusted root (self-signed: = ca-cert.pem)
  std::string cert_chain_pem;  // cert-chain.pem: intermediates above the signer (may be empty)
};

inline constexpr const char* kCaCertKey = "ca-cert.pem";
inline constexpr const char* kCaKeyKey = "ca-key.pem";
inline constexpr const char* kCaSecretName = "istio-ca-secret";
inline constexpr const char* kCaSecretType = "istio.io/ca-root";

// Thread-safe. Contract (tests/ca/ca_store_contract_test.cc runs one suite against LocalCaStore
// and KubeCaStore):
//   Load:   kNotFound when nothing is stored; other errors are retried by the caller.
//   Create: stores `ca` only if nothing is stored yet; kAlreadyExists otherwise. Two replicas
//           racing both call Load() after an AlreadyExists and end up using the same CA.
//   LoadRecord / StoreRecord: the whole record, Istio's keys plus the trust lifecycle's
//           (ca/trust/state.h), with an opaque version. StoreRecord replaces it only if the stored
//           version still equals `expected_version` ("" = whatever a Create or Istio wrote, or
//           nothing), else kAborted: the writer re-reads and decides again. Every key whose
//           name ends in "key.pem" is key material (0600 locally, never logged).
struct StoredRecord {
  std::map<std::string, std::string> data;
  std::string version;
};

class CaStore {
 public:
  virtual ~CaStore() = default;
  virtual Result<StoredCa> Load() const = 0;
  virtual Status Create(const StoredCa& ca) = 0;
  virtual Result<StoredRecord> LoadRecord() const = 0;
  virtual Status StoreRecord(const std::map<std::string, std::string>& data,
                             const std::string& expected_version) = 0;
};

}  // namespace istioca::ca
