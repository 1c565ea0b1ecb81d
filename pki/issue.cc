#include "pki/issue.h"

#include <openssl/rand.h>

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
  UniquePtr<ASN1_INTEGER> serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (serial == nullptr || X509_set_serialNumber(x, serial.get()) != 1) {
    return OsslError(Code::kInternal, "setting serial failed");
  }
  return OkStatus();
}

Status SetValidity(X509* x, TimePoint not_before, TimePoint not_after) {
  const std::time_t nb = std::chrono::system_clock::to_time_t(not_before);
  const std::time_t na = std::chrono::system_clock::to_time_t(not_after);
  if (ASN1_TIME_set(X509_getm_notBefore(x), nb) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x), na) == nullptr) {
    return OsslError(Code::kInternal, "setting validity failed");
  }
  return OkStatus();
}

Status AddExt(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  UniquePtr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OsslError(Code::kInternal, std::string("adding extension ") + OBJ_nid2sn(nid) + " failed");
  }
  return OkStatus();
}

Status AddSans(X509* cert, const std::vector<std::string>& uris, const std::vector<std::string>& dns) {
  UniquePtr<GENERAL_NAMES> names = MakeGeneralNames(uris, dns);
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
    return FailedPrecondition("the signing certificate expired at " + FormatRfc3339(signer.cert.NotAfter()));
  }
  if (now < signer.cert.NotBefore()) {
    return FailedPrecondition("the signing certificate is not valid until " +
                              FormatRfc3339(signer.cert.NotBefore()));
  }
  return OkStatus();
}

Result<UniquePtr<X509>> NewCert(EVP_PKEY* subject_key, TimePoint not_before, TimePoint not_after) {
  UniquePtr<X509> x(X509_new());
  if (x == nullptr || X509_set_version(x.get(), X509_VERSION_3) != 1) {
    return OsslError(Code::kInternal, "allocating certificate failed");
  }
  RETURN_IF_ERROR(SetRandomSerial(x.get()));
  RETURN_IF_ERROR(SetValidity(x.get(), not_before, not_after));
  if (X509_set_pubkey(x.get(), subject_key) != 1) {
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

UniquePtr<X509_NAME> OrgName(const std::string& org) {
  UniquePtr<X509_NAME> name(X509_NAME_new());
  X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  return name;
}

std::string BasicConstraintsValue(int path_len) {
  return path_len >= 0 ? "critical,CA:TRUE,pathlen:" + std::to_string(path_len) : "critical,CA:TRUE";
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
  ASSIGN_OR_RETURN(UniquePtr<X509> x, NewCert(subject_key, now - kClockSkewBackdate, not_after));
  if (X509_set_issuer_name(x.get(), X509_get_subject_name(signer.cert.get())) != 1) {
    return OsslError(Code::kInternal, "setting issuer failed");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, signer.cert.get(), x.get(), nullptr, nullptr, 0);
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment"));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth"));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  RETURN_IF_ERROR(AddSans(x.get(), tmpl.uris, tmpl.dns_names));
  RETURN_IF_ERROR(Sign(x.get(), signer.key));
  return Certificate::Adopt(std::move(x));
}

Result<Certificate> MakeSelfSignedRoot(const PrivateKey& key, const CaTemplate& tmpl, TimePoint now) {
  if (tmpl.ttl <= Duration::zero()) return InvalidArgument("CA certificate TTL must be positive");
  if (tmpl.organization.empty()) return InvalidArgument("CA organization must not be empty");
  const TimePoint not_after = now + std::chrono::duration_cast<TimePoint::duration>(tmpl.ttl);
  ASSIGN_OR_RETURN(UniquePtr<X509> x, NewCert(key.get(), now - kClockSkewBackdate, not_after));
  UniquePtr<X509_NAME> name = OrgName(tmpl.organization);
  X509_set_subject_name(x.get(), name.get());
  X509_set_issuer_name(x.get(), name.get());
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_basic_constraints, BasicConstraintsValue(tmpl.path_len).c_str()));
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
  UniquePtr<X509_NAME> name = OrgName(tmpl.organization);
  X509_set_subject_name(x.get(), name.get());
  X509_set_issuer_name(x.get(), X509_get_subject_name(parent.cert.get()));
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, parent.cert.get(), x.get(), nullptr, nullptr, 0);
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_basic_constraints, BasicConstraintsValue(tmpl.path_len).c_str()));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExt(x.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  RETURN_IF_ERROR(Sign(x.get(), parent.key));
  return Certificate::Adopt(std::move(x));
}

}  // namespace istioca::pki
