// Arbitrary bytes as a CSR, both as PEM and as DER. A CSR that parses has passed its
// signature check, so its key and requested names must be readable.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pki/csr.h"
#include "pki/key.h"
#include "tests/fuzz/fuzz_check.h"

using namespace istioca::pki;

namespace {

// Differential: our DER walker must never accept a CSR that OpenSSL's own parser and
// signature check reject (pki/csr.cc parses by hand for speed).
void AgreesWithOpenssl(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size()));
  const bool ok =
      req != nullptr && p == reinterpret_cast<const unsigned char*>(der.data()) + der.size() &&
      X509_REQ_get0_pubkey(req) != nullptr && X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) == 1;
  X509_REQ_free(req);
  ClearOsslErrors();
  FUZZ_CHECK(ok);
}

void Read(const Csr& csr) {
  AgreesWithOpenssl(csr.Der());
  FUZZ_CHECK(csr.PublicKey() != nullptr);
  (void)csr.UriSans();
  (void)csr.DnsSans();
  (void)csr.RequestsCa();
  (void)CheckAcceptableKey(csr.PublicKey());
  auto again = Csr::FromPem(csr.ToPem());
  FUZZ_CHECK(again.ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto csr = Csr::FromPem(input); csr.ok()) Read(*csr);
  if (auto csr = Csr::FromDer(input); csr.ok()) Read(*csr);
  return 0;
}
