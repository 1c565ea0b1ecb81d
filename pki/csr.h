// pki/csr.h — PKCS#10 certificate signing requests.
//
// Parsing verifies the CSR's self-signature (proof of possession of the private key) before
// anything else reads it; a CSR that fails is never looked at further. Its requested
// extensions are readable (for authorization) but never copied into a certificate.
//
// The DER is walked here rather than by d2i_X509_REQ: OpenSSL 3.0 decodes the embedded public
// key through its provider decoders, which cost about twice the signature check itself and
// serialise threads. EC and RSA keys are imported from their raw values instead; anything else
// goes through OpenSSL's generic decoder.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "pki/key.h"
#include "pki/ossl.h"

namespace istioca::pki {

struct CsrOptions {
  std::vector<std::string> uris;
  std::vector<std::string> dns_names;
  std::string organization;  // Istio's CSRs carry O=<org>, often empty; omitted here when empty
};

class Csr {
 public:
  // Upper bound for a PEM CSR accepted from a client (a 4096-bit RSA CSR with a few SANs is
  // about 2 KiB).
  static constexpr size_t kMaxPemSize = 64 * 1024;

  static Result<Csr> Build(const PrivateKey& key, const CsrOptions& options);
  // Parses one CERTIFICATE REQUEST PEM block and verifies its signature.
  static Result<Csr> FromPem(std::string_view pem);
  static Result<Csr> FromDer(std::string_view der);

  std::string ToPem() const;
  const std::string& Der() const { return der_; }
  EVP_PKEY* PublicKey() const { return key_.get(); }
  // The SubjectPublicKeyInfo as the request carries it (DER, a view into Der()).
  std::string_view SubjectPublicKeyInfoDer() const {
    return std::string_view(der_).substr(spki_offset_, spki_length_);
  }
  std::vector<std::string> UriSans() const;
  std::vector<std::string> DnsSans() const;
  // True if the request asks for basicConstraints CA:TRUE (refused by the gRPC service).
  bool RequestsCa() const;

 private:
  Csr() = default;
  std::vector<std::string> Sans(int general_name_type) const;
  std::string der_;
  size_t spki_offset_ = 0;
  size_t spki_length_ = 0;
  std::shared_ptr<EVP_PKEY> key_;
  std::shared_ptr<STACK_OF(X509_EXTENSION)> extensions_;  // from the extensionRequest attribute
};

}  // namespace istioca::pki
