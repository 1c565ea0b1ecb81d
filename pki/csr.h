// pki/csr.h — PKCS#10 certificate signing requests.
//
// Parsing verifies the CSR's self-signature (proof of possession of the private key) before
// anything else reads it; a CSR that fails is never looked at further. Its requested
// extensions are readable (for authorization) but never copied into a certificate.
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
  X509_REQ* get() const { return req_.get(); }
  EVP_PKEY* PublicKey() const;
  std::vector<std::string> UriSans() const;
  std::vector<std::string> DnsSans() const;
  // True if the request asks for basicConstraints CA:TRUE (refused by the gRPC service).
  bool RequestsCa() const;

 private:
  explicit Csr(UniquePtr<X509_REQ>&& req) : req_(std::move(req)) {}
  std::shared_ptr<X509_REQ> req_;
};

}  // namespace istioca::pki
