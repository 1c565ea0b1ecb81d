#include "pki/issue.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/rand.h>

#include <array>
#include <ctime>

#include "pki/general_names.h"

namespace istioca::pki {
namespace {

Status SetRandomSerial(X509* x) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return OsslError(Code::kInternal, "RAND_bytes failed");
  bytes[0] &= 0x7F;  // positive INTEGER; leaves 127 random bits in a 16-byte encoding
  if (bytes[0] == 0) bytes[0] = 0x01;  // keep the encoding 16 bytes long
  UniquePtr<BIGNUM> bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (bn == nullptr) return OsslError(Code::kInternal, "making the serial failed");
  UniquePtr<ASN1_INTEGER> serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (serial == nullptr || X509_set_serialNumber(x, serial.get()) != 1) {
    return OsslError(Code::kInternal, "setting serial failed");
  }
  return OkStatus();
}

Status SetValidity(X509* x, TimePoint not_before, TimePoint not_after) {
  const auto nb = static_cast<std::time_t>(UnixSeconds(not_before));
  const auto na = static_cast<std::time_t>(UnixSeconds(not_after));
  if (ASN1_TIME_set(X509_getm_notBefore(x), nb) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x), na) == nullptr) {
    return OsslError(Code::kInternal, "setting validity failed");
  }
  return OkStatus();
}

Status AddExt(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  UniquePtr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OsslError(Code::kInternal,
                     std::string("adding extension ") + OBJ_nid2sn(nid) + " failed");
  }
  return OkStatus();
}

// The three extensions every leaf carries unchanged, encoded once per process:
// X509V3_EXT_conf_nid parses its text and encodes on every call. Freed at exit (LeakSanitizer).
const std::array<UniquePtr<X509_EXTENSION>, 3>& FixedLeafExtensions() {
  static const std::array<UniquePtr<X509_EXTENSION>, 3> exts = {
      UniquePtr<X509_EXTENSION>(X509V3_EXT_conf_nid(nullptr, nullptr, NID_key_usage,
                                                    "critical,digitalSignature,keyEncipherment")),
      UniquePtr<X509_EXTENSION>(
          X509V3_EXT_conf_nid(nullptr, nullptr, NID_ext_key_usage, "serverAuth,clientAuth")),
      UniquePtr<X509_EXTENSION>(
          X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:FALSE"))};
  return exts;
}

Status AddSans(X509* cert, const std::vector<std::string>& uris,
               const std::vector<std::string>& dns) {
  ASSIGN_OR_RETURN(UniquePtr<GENERAL_NAMES> names, MakeGeneralNames(uris, dns));
  // Critical because the subject is empty (RFC 5280 4.2.1.6; Istio since 1.2).
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 1, X509V3_ADD_DEFAULT) != 1) {
    return OsslError(Code::kInternal, "adding SAN extension failed");
  }
  return OkStatus();
}

Status CheckSignerUsable(const Signer& signer, TimePoint now) {
  if (signer.cert.get() == nullptr || signer.key.get() == nullptr) {
    return FailedPrecondition("the CA is not loaded");
  }
  if (now >= signer.cert.NotAfter()) {
    return FailedPrecondition("the signing certificate expired at " +
                              FormatRfc3339(signer.cert.NotAfter()));
  }
  if (now < signer.cert.NotBefore()) {
    return FailedPrecondition("the signing certificate is not valid until " +
                              FormatRfc3339(signer.cert.NotBefore()));
  }
  return OkStatus();
}

// DER length octets.
void AppendLength(std::string* out, size_t len) {
  if (len < 0x80) {
    out->push_back(static_cast<char>(len));
    return;
  }
  std::string bytes;
  for (size_t l = len; l > 0; l >>= 8) bytes.insert(bytes.begin(), static_cast<char>(l & 0xFF));
  out->push_back(static_cast<char>(0x80 | bytes.size()));
  *out += bytes;
}

// A positive DER INTEGER from a BIGNUM.
void AppendInteger(std::string* out, const BIGNUM* bn) {
  // BN_bn2bin writes exactly BN_num_bytes bytes and cannot fail.
  std::string value(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(value.data()));
  if (value.empty() || (static_cast<uint8_t>(value[0]) & 0x80)) value.insert(value.begin(), '\0');
  out->push_back(0x02);
  AppendLength(out, value.size());
  *out += value;
}

// Sets the certificate's SubjectPublicKeyInfo from the key's raw parameters.
//
// X509_set_pubkey() in OpenSSL 3.0 encodes the key through the provider encoders and decodes it
// back; measured with callgrind it was 81% of IssueLeaf's instructions (pki_bench). Reading the
// EC point or the RSA modulus/exponent and building the SPKI fields directly avoids both. Other
// key types fall back to X509_set_pubkey (CheckAcceptableKey refuses them anyway).
Status SetPublicKey(X509* x, EVP_PKEY* key) {
  X509_PUBKEY* spki = X509_get_X509_PUBKEY(x);
  if (IsEc(key)) {
    char group[64] = {0};
    size_t group_len = 0;
    size_t point_len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &group_len) == 1 &&
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0,
                                        &point_len) == 1) {
      const int curve =
          OBJ_txt2nid(group) != NID_undef ? OBJ_txt2nid(group) : EC_curve_nist2nid(group);
      auto* point = static_cast<unsigned char*>(OPENSSL_malloc(point_len));
      if (curve != NID_undef && point != nullptr &&
          EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, point_len,
                                          &point_len) == 1 &&
          X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                                 OBJ_nid2obj(curve), point, static_cast<int>(point_len)) == 1) {
        return OkStatus();
      }
      OPENSSL_free(point);
    }
  } else if (IsRsa(key)) {
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) == 1) {
      UniquePtr<BIGNUM> n_owner(n), e_owner(e);
      std::string body;
      AppendInteger(&body, n);
      AppendInteger(&body, e);
      std::string der(1, 0x30);  // RSAPublicKey ::= SEQUENCE { modulus, publicExponent }
      AppendLength(&der, body.size());
      der += body;
      auto* bits = static_cast<unsigned char*>(OPENSSL_memdup(der.data(), der.size()));
      if (bits != nullptr &&
          X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, nullptr, bits,
                                 static_cast<int>(der.size())) == 1) {
        return OkStatus();
      }
      OPENSSL_free(bits);
    } else {
      BN_free(n);
    }
  }
  ClearOsslErrors();
  if (X509_set_pubkey(x, key) != 1) return OsslError(Code::kInvalidArgument, "unusable public key");
  return OkStatus();
}

// `fast_key`: set the key with SetPublicKey (leaves, the hot path); the resulting X509 then has
// no decoded key of its own, so the Certificate carries the subject key beside it.
Result<UniquePtr<X509>> NewCert(EVP_PKEY* subject_key, TimePoint not_before, TimePoint not_after,
                                bool fast_key = false) {
  UniquePtr<X509> x(X509_new());
  if (x == nullptr || X509_set_version(x.get(), X509_VERSION_3) != 1) {
    return OsslError(Code::kInternal, "allocating certificate failed");
  }
  RETURN_IF_ERROR(SetRandomSerial(x.get()));
  RETURN_IF_ERROR(SetValidity(x.get(), not_before, not_after));
  if (fast_key) {
    RETURN_IF_ERROR(SetPublicKey(x.get(), subject_key));
  } else if (X509_set_pubkey(x.get(), subject_key) != 1) {
    return OsslError(Code::kInvalidArgument, "unusable public key");
  }
  return x;
}

Status Sign(X509* x, const PrivateKey& key) {
  if (X509_sign(x, key.get(), DigestFor(key.get())) <= 0) {
    return OsslError(Code::kInternal, "signing the certificate failed");
  }
  return OkStatus();
}

// O=<org>. An organization that is not UTF-8 (or too long for the attribute) is an error:
// unchecked, it left the subject empty.
Result<UniquePtr<X509_NAME>> OrgName(const std::string& org) {
  UniquePtr<X509_NAME> name(X509_NAME_new());
  if (name == nullptr) return OsslError(Code::kInternal, "allocating a subject name failed");
  if (X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(org.data()),
                                 static_cast<int>(org.size()), -1, 0) != 1) {
    return OsslError(Code::kInvalidArgument,
                     "the CA organization is not usable as a subject O= (it must be valid UTF-8 "
                     "of at most 64 characters)");
  }
  return name;
}

Status SetNames(X509* x, const X509_NAME* subject, const X509_NAME* issuer) {
  if (X509_set_subject_name(x, subject) != 1 || X509_set_issuer_name(x, issuer) != 1) {
    return OsslError(Code::kInternal, "setting subject and issuer failed");
  }
  return OkStatus();
}

std::string BasicConstraintsValue(int path_len) {
  return path_len >= 0 ? "critical,CA:TRUE,pathlen:" + std::to_string(path_len)
                       : "critical,CA:TRUE";
}

}  // namespace

Result<Certificate> IssueLeaf(const Signer& signer, EVP_PKEY* subject_key, const LeafTemplate& tmpl,
                              TimePoint now) {
  RETURN_IF_ERROR(CheckSignerUsable(signer, now));
  if (tmpl.ttl <= Duration::zero()) return InvalidArgument("certificate TTL must be positive");
  if (tmpl.uris.empty() && tmpl.dns_names.empty()) {
    return InvalidArgument("a workload certificate needs at least one identity");
  }
  RETURN_IF_ERROR(CheckAcceptableKey(subject_key));
  const TimePoint requested_end = now + std::chrono::duration_cast<TimePoint::duration>(tmpl.ttl);
  const TimePoint not_after = std::min(requested_end, signer.cert.NotAfter());
  ASSIGN_OR_RETURN(UniquePtr<X509> x,
                   NewCert(subject_key, now - kClockSkewBackdate, not_after, true));
  if (X509_set_issuer_name(x.get(), X509_get_subject_name(signer.cert.get())) != 1) {
    return OsslError(Code::kInternal, "setting issuer failed");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, signer.cert.get(), x.get(), nullptr, nullptr, 0);
  for (const UniquePtr<X509_EXTENSION>& ext : FixedLeafExtensions()) {
    if (ext == nullptr || X509_add_ext(x.get(), ext.get(), -1) != 1) {
      return OsslError(Code::kInternal, "adding a leaf extension failed");
    }
  }
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  RETURN_IF_ERROR(AddSans(x.get(), tmpl.uris, tmpl.dns_names));
  RETURN_IF_ERROR(Sign(x.get(), signer.key));
  if (EVP_PKEY_up_ref(subject_key) != 1)
    return OsslError(Code::kInternal, "keeping the key failed");
  return Certificate::Adopt(std::move(x), UniquePtr<EVP_PKEY>(subject_key));
}

Result<Certificate> MakeSelfSignedRoot(const PrivateKey& key, const CaTemplate& tmpl,
                                       TimePoint now) {
  if (tmpl.ttl <= Duration::zero()) return InvalidArgument("CA certificate TTL must be positive");
  if (tmpl.organization.empty()) return InvalidArgument("CA organization must not be empty");
  const TimePoint not_after = now + std::chrono::duration_cast<TimePoint::duration>(tmpl.ttl);
  ASSIGN_OR_RETURN(UniquePtr<X509> x, NewCert(key.get(), now - kClockSkewBackdate, not_after));
  ASSIGN_OR_RETURN(UniquePtr<X509_NAME> name, OrgName(tmpl.organization));
  RETURN_IF_ERROR(SetNames(x.get(), name.get(), name.get()));
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(
      AddExt(x.get(), &ctx, NID_basic_constraints, BasicConstraintsValue(tmpl.path_len).c_str()));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(Sign(x.get(), key));
  return Certificate::Adopt(std::move(x));
}

Result<Certificate> IssueIntermediate(const Signer& parent, EVP_PKEY* subject_key,
                                      const CaTemplate& tmpl, TimePoint now) {
  RETURN_IF_ERROR(CheckSignerUsable(parent, now));
  if (tmpl.ttl <= Duration::zero()) return InvalidArgument("CA certificate TTL must be positive");
  const TimePoint requested_end = now + std::chrono::duration_cast<TimePoint::duration>(tmpl.ttl);
  const TimePoint not_after = std::min(requested_end, parent.cert.NotAfter());
  ASSIGN_OR_RETURN(UniquePtr<X509> x, NewCert(subject_key, now - kClockSkewBackdate, not_after));
  ASSIGN_OR_RETURN(UniquePtr<X509_NAME> name, OrgName(tmpl.organization));
  RETURN_IF_ERROR(SetNames(x.get(), name.get(), X509_get_subject_name(parent.cert.get())));
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, parent.cert.get(), x.get(), nullptr, nullptr, 0);
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(
      AddExt(x.get(), &ctx, NID_basic_constraints, BasicConstraintsValue(tmpl.path_len).c_str()));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  RETURN_IF_ERROR(Sign(x.get(), parent.key));
  return Certificate::Adopt(std::move(x));
}

}  // namespace istioca::pki
