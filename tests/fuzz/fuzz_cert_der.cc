// Arbitrary DER as a certificate: parse, then read every field `inspect` shows and apply the
// X509-SVID rules, and verify it against itself as the only root.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pki/cert.h"
#include "pki/verify.h"
#include "tests/fuzz/fuzz_check.h"

using namespace istioca::pki;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto cert = Certificate::FromDer(input);
  if (!cert.ok()) return 0;

  const CertInfo info = Describe(*cert);
  (void)LeafSvidViolations(info);
  (void)SigningSvidViolations(info);
  (void)cert->ToPem();
  (void)cert->IsSelfSigned();
  (void)cert->Lifetime();
  FUZZ_CHECK(!info.sha256_fingerprint.empty());
  // A self-verification against itself as the only root must not crash, whatever it decides.
  (void)VerifyChain(*cert, {}, {*cert}, cert->NotBefore());
  return 0;
}
