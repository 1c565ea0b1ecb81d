// Arbitrary bytes as a CSR, both as PEM and as DER. A CSR that parses has passed its
// signature check, so its key and requested names must be readable.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pki/csr.h"
#include "pki/key.h"
#include "tests/fuzz/fuzz_check.h"

using namespace istioca::pki;

namespace {

void Read(const Csr& csr) {
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
