// pki/key.h — private and public keys.
//
// Generates EC P-256/P-384 and RSA 2048/3072/4096 keys; reads PKCS#1 ("RSA PRIVATE KEY"),
// SEC1 ("EC PRIVATE KEY", optionally after an "EC PARAMETERS" block) and unencrypted PKCS#8
// ("PRIVATE KEY"); always writes PKCS#8. The key material itself never appears in an error.
#pragma once

#include <string>
#include <string_view>

#include "base/secret.h"
#include "base/status.h"
#include "pki/ossl.h"

namespace istioca::pki {

enum class KeyType { kEcP256, kEcP384, kRsa2048, kRsa3072, kRsa4096 };

// "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096" (the flag values).
Result<KeyType> ParseKeyType(std::string_view name);
const char* KeyTypeName(KeyType type);

// "EC P-256", "RSA 2048", "Ed25519", ... for any public or private key.
std::string DescribeKey(const EVP_PKEY* key);
// Bits of the key (RSA modulus or EC field size).
int KeyBits(const EVP_PKEY* key);
bool IsRsa(const EVP_PKEY* key);
bool IsEc(const EVP_PKEY* key);
// EC curve short name ("P-256") or empty.
std::string EcCurveName(const EVP_PKEY* key);
// True when both hold the same public key.
bool SamePublicKey(const EVP_PKEY* a, const EVP_PKEY* b);

// The key rule for anything istio-ca signs: RSA >= 2048 bits, or EC on P-256 / P-384.
Status CheckAcceptableKey(const EVP_PKEY* key);

// A private key. Copying shares the underlying (reference-counted, immutable) EVP_PKEY.
class PrivateKey {
 public:
  static Result<PrivateKey> Generate(KeyType type);
  // Reads the first private-key block of `pem`.
  static Result<PrivateKey> FromPem(std::string_view pem);
  static PrivateKey Adopt(UniquePtr<EVP_PKEY>&& key) { return PrivateKey(std::move(key)); }

  PrivateKey(const PrivateKey& other);
  PrivateKey& operator=(const PrivateKey& other);
  PrivateKey(PrivateKey&&) = default;
  PrivateKey& operator=(PrivateKey&&) = default;

  // PKCS#8 "PRIVATE KEY" PEM, wiped when the result goes away. An error (never an empty string)
  // when the key cannot be encoded, e.g. a key object that holds only a public key.
  Result<SecretString> ToPem() const;
  EVP_PKEY* get() const { return key_.get(); }
  std::string Describe() const { return DescribeKey(key_.get()); }

 private:
  explicit PrivateKey(UniquePtr<EVP_PKEY>&& key) : key_(std::move(key)) {}
  UniquePtr<EVP_PKEY> key_;
};

// The digest Go would choose for this signing key: SHA-384 for P-384, SHA-256 otherwise.
const EVP_MD* DigestFor(const EVP_PKEY* signing_key);

}  // namespace istioca::pki
