// Arbitrary bytes through every PEM entry point: the strict framer, the certificate-chain
// reader and the private-key reader. Whatever the framer accepts must survive a re-encode.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/base64.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "pki/pem.h"
#include "tests/fuzz/fuzz_check.h"

using namespace istioca;
using namespace istioca::pki;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  auto blocks = ParsePem(input);
  if (blocks.ok()) {
    FUZZ_CHECK(!blocks->empty());
    for (const PemBlock& block : *blocks) {
      auto again = ParsePem(EncodePem(block.type, block.der));
      FUZZ_CHECK(again.ok());
      FUZZ_CHECK(again->size() == 1);
      FUZZ_CHECK((*again)[0].type == block.type);
      FUZZ_CHECK((*again)[0].der == block.der);
    }
  }

  auto chain = Certificate::ParsePemChain(input);
  if (chain.ok()) {
    FUZZ_CHECK(!chain->empty());
    for (const Certificate& cert : *chain) (void)Describe(cert);
  }

  auto key = PrivateKey::FromPem(input);
  if (key.ok()) {
    (void)key->Describe();
    (void)CheckAcceptableKey(key->get());
  }

  auto decoded = Base64Decode(input);
  if (decoded.ok()) FUZZ_CHECK(Base64Decode(Base64Encode(*decoded)).value() == *decoded);
  (void)LooksLikeDer(input);
  return 0;
}
