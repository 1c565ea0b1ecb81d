// Arbitrary strings as SPIFFE IDs. A parsed ID printed with ToString() must parse back to the
// same ID, and an Istio-shaped one must rebuild through WorkloadId.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pki/spiffe.h"
#include "tests/fuzz/fuzz_check.h"

using namespace istioca::pki;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto id = ParseSpiffeId(input);
  if (!id.ok()) return 0;

  FUZZ_CHECK(id->ToString().size() <= 2048);
  auto again = ParseSpiffeId(id->ToString());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == *id);
  FUZZ_CHECK(ValidateTrustDomain(id->trust_domain).ok());

  if (auto sa = IstioServiceAccount(*id); sa.has_value()) {
    auto rebuilt = WorkloadId(id->trust_domain, sa->ns, sa->sa);
    FUZZ_CHECK(rebuilt.ok());
    FUZZ_CHECK(*rebuilt == *id);
  }
  return 0;
}
