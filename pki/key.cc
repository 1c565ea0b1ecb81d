#include "pki/key.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "pki/pem.h"

namespace istioca::pki {

Result<KeyType> ParseKeyType(std::string_view name) {
  if (name == "ec-p256") return KeyType::kEcP256;
  if (name == "ec-p384") return KeyType::kEcP384;
  if (name == "rsa-2048") return KeyType::kRsa2048;
  if (name == "rsa-3072") return KeyType::kRsa3072;
  if (name == "rsa-4096") return KeyType::kRsa4096;
  return InvalidArgument("unknown key type \"" + std::string(name) +
                         "\" (use ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096)");
}

const char* KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kEcP256: return "ec-p256";
    case KeyType::kEcP384: return "ec-p384";
    case KeyType::kRsa2048: return "rsa-2048";
    case KeyType::kRsa3072: return "rsa-3072";
    case KeyType::kRsa4096: return "rsa-4096";
  }
  return "unknown";
}

bool IsRsa(const EVP_PKEY* key) { return EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA; }
bool IsEc(const EVP_PKEY* key) { return EVP_PKEY_get_base_id(key) == EVP_PKEY_EC; }
int KeyBits(const EVP_PKEY* key) { return EVP_PKEY_get_bits(key); }

std::string EcCurveName(const EVP_PKEY* key) {
  if (!IsEc(key)) return "";
  char name[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) !=
      1) {
    ClearOsslErrors();
    return "unknown curve";
  }
  const std::string group(name, len);
  if (group == "prime256v1" || group == "P-256") return "P-256";
  if (group == "secp384r1" || group == "P-384") return "P-384";
  if (group == "secp521r1" || group == "P-521") return "P-521";
  return group;
}

std::string DescribeKey(const EVP_PKEY* key) {
  if (key == nullptr) return "none";
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: return "RSA " + std::to_string(KeyBits(key));
    case EVP_PKEY_EC: return "EC " + EcCurveName(key);
    case EVP_PKEY_ED25519: return "Ed25519";
    case EVP_PKEY_ED448: return "Ed448";
    case EVP_PKEY_DSA: return "DSA " + std::to_string(KeyBits(key));
    default: return "unknown (" + std::to_string(KeyBits(key)) + " bits)";
  }
}

bool SamePublicKey(const EVP_PKEY* a, const EVP_PKEY* b) {
  if (a == nullptr || b == nullptr) return false;
  const int eq = EVP_PKEY_eq(a, b);
  ClearOsslErrors();
  return eq == 1;
}

Status CheckAcceptableKey(const EVP_PKEY* key) {
  if (IsRsa(key)) {
    if (KeyBits(key) < 2048) {
      return InvalidArgument("RSA key of " + std::to_string(KeyBits(key)) +
                             " bits is too small (at least 2048 required)");
    }
    if (KeyBits(key) > 8192)
      return InvalidArgument("RSA key larger than 8192 bits is not accepted");
    return OkStatus();
  }
  if (IsEc(key)) {
    const std::string curve = EcCurveName(key);
    if (curve == "P-256" || curve == "P-384") return OkStatus();
    return InvalidArgument("EC curve " + curve + " is not accepted (use P-256 or P-384)");
  }
  return InvalidArgument("key type " + DescribeKey(key) + " is not accepted (use RSA or EC)");
}

const EVP_MD* DigestFor(const EVP_PKEY* signing_key) {
  if (IsEc(signing_key) && EcCurveName(signing_key) == "P-384") return EVP_sha384();
  if (IsEc(signing_key) && EcCurveName(signing_key) == "P-521") return EVP_sha512();
  return EVP_sha256();
}

PrivateKey::PrivateKey(const PrivateKey& other) : key_(nullptr) {
  if (other.key_ != nullptr) {
    EVP_PKEY_up_ref(other.key_.get());
    key_.reset(other.key_.get());
  }
}

PrivateKey& PrivateKey::operator=(const PrivateKey& other) {
  if (this != &other) {
    PrivateKey copy(other);
    key_ = std::move(copy.key_);
  }
  return *this;
}

Result<PrivateKey> PrivateKey::Generate(KeyType type) {
  EVP_PKEY* raw = nullptr;
  switch (type) {
    case KeyType::kEcP256: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case KeyType::kEcP384: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
    case KeyType::kRsa2048: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}); break;
    case KeyType::kRsa3072: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{3072}); break;
    case KeyType::kRsa4096: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{4096}); break;
  }
  if (raw == nullptr) {
    return OsslError(Code::kInternal,
                     std::string("generating ") + KeyTypeName(type) + " key failed");
  }
  return PrivateKey(UniquePtr<EVP_PKEY>(raw));
}

namespace {

Result<UniquePtr<EVP_PKEY>> DecodeBlock(const PemBlock& block) {
  const auto* p = reinterpret_cast<const unsigned char*>(block.der.data());
  const long len = static_cast<long>(block.der.size());
  EVP_PKEY* key = nullptr;
  if (block.type == "PRIVATE KEY") {
    UniquePtr<PKCS8_PRIV_KEY_INFO> info(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, len));
    if (info != nullptr) key = EVP_PKCS82PKEY(info.get());
  } else if (block.type == "RSA PRIVATE KEY") {
    key = d2i_PrivateKey(EVP_PKEY_RSA, nullptr, &p, len);
  } else if (block.type == "EC PRIVATE KEY") {
    key = d2i_PrivateKey(EVP_PKEY_EC, nullptr, &p, len);
  } else if (block.type == "ENCRYPTED PRIVATE KEY") {
    return InvalidArgument("the private key is encrypted; istio-ca needs an unencrypted key");
  }
  if (key == nullptr) {
    return OsslError(Code::kInvalidArgument, "PEM block " + block.type + " at line " +
                                                 std::to_string(block.line) +
                                                 " is not a valid private key");
  }
  if (p != reinterpret_cast<const unsigned char*>(block.der.data()) + len) {
    EVP_PKEY_free(key);
    return InvalidArgument("PEM block " + block.type + " at line " + std::to_string(block.line) +
                           " has trailing data after the key");
  }
  return UniquePtr<EVP_PKEY>(key);
}

}  // namespace

Result<PrivateKey> PrivateKey::FromPem(std::string_view pem) {
  ASSIGN_OR_RETURN(std::vector<PemBlock> blocks, ParsePem(pem));
  for (const PemBlock& block : blocks) {
    if (block.type == "EC PARAMETERS") continue;  // openssl ecparam -genkey writes this first
    if (block.type.find("PRIVATE KEY") == std::string::npos) continue;
    ASSIGN_OR_RETURN(UniquePtr<EVP_PKEY> key, DecodeBlock(block));
    return PrivateKey(std::move(key));
  }
  return InvalidArgument(
      "no private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or EC "
      "PRIVATE KEY PEM block)");
}

Result<SecretString> PrivateKey::ToPem() const {
  if (key_ == nullptr) return FailedPrecondition("encoding private key: no key");
  UniquePtr<PKCS8_PRIV_KEY_INFO> info(EVP_PKEY2PKCS8(key_.get()));
  if (info == nullptr) return OsslError(Code::kInternal, "encoding private key as PKCS#8 failed");
  unsigned char* der = nullptr;
  const int len = i2d_PKCS8_PRIV_KEY_INFO(info.get(), &der);
  if (len <= 0 || der == nullptr) {
    return OsslError(Code::kInternal, "encoding private key as PKCS#8 DER failed");
  }
  SecretString out(EncodePem("PRIVATE KEY", std::string_view(reinterpret_cast<char*>(der), len)));
  OPENSSL_clear_free(der, static_cast<size_t>(len));
  if (out.empty()) return Internal("encoding private key as PEM failed");
  return out;
}

}  // namespace istioca::pki
