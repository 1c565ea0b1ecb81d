#include "pki/issue.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <array>
#include <ctime>
#include <memory>
#include <utility>

#include "pki/der.h"
#include "pki/digest.h"

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

// ---- Leaves: DER built from a per-signer template -------------------------------------------
//
// Building a leaf through OpenSSL's X509 object cost about as much as the signature itself
// (callgrind, pki_bench): per-call extension objects, an i2d of the whole structure, the
// subject key run through the provider encoders, algorithm fetches inside X509_sign, then a
// d2i to read the result back. A leaf differs from the next only in serial, validity, key, SKID
// and SAN, so everything else is encoded once per signer and the TBSCertificate is spliced
// together from bytes. pki_test checks the result against OpenSSL's re-encoding of it.

// KU (critical), EKU, BC (critical, CA:FALSE): the same for every leaf, encoded once.
const std::string& FixedLeafExtensionsDer() {
  static const std::string der = [] {
    std::string out;
    const std::pair<int, const char*> kExts[] = {
        {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
        {NID_ext_key_usage, "serverAuth,clientAuth"},
        {NID_basic_constraints, "critical,CA:FALSE"}};
    for (const auto& [nid, value] : kExts) {
      UniquePtr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, nullptr, nid, value));
      unsigned char* p = nullptr;
      const int len = ext == nullptr ? -1 : i2d_X509_EXTENSION(ext.get(), &p);
      if (len <= 0) {
        ClearOsslErrors();
        return std::string();
      }
      out.append(reinterpret_cast<char*>(p), static_cast<size_t>(len));
      OPENSSL_free(p);
    }
    return out;
  }();
  return der;
}

// What one thread needs to issue leaves under one signer.
struct LeafSigner {
  // What it was made for. The references keep both objects alive, so equal pointers later mean
  // the same (immutable) certificate and key.
  UniquePtr<X509> cert;
  UniquePtr<EVP_PKEY> key;
  TimePoint not_before;  // the signer's validity, read once
  TimePoint not_after;
  const EVP_MD* md = nullptr;        // the signature's digest (DigestFor), fetched
  UniquePtr<EVP_PKEY_CTX> sign_ctx;  // EVP_PKEY_sign of a digest; this thread only
  std::string sig_alg;               // AlgorithmIdentifier, in the TBS and after it
  std::string issuer;                // the signer's subject Name
  std::string akid;                  // authorityKeyIdentifier extension (keyid = signer's SKID)
};

Result<std::unique_ptr<LeafSigner>> MakeLeafSigner(const Signer& signer) {
  X509* cert = signer.cert.get();
  EVP_PKEY* key = signer.key.get();
  auto s = std::make_unique<LeafSigner>();
  if (X509_up_ref(cert) != 1) return OsslError(Code::kInternal, "keeping the signer failed");
  s->cert.reset(cert);
  if (EVP_PKEY_up_ref(key) != 1) return OsslError(Code::kInternal, "keeping the signer failed");
  s->key.reset(key);
  s->not_before = signer.cert.NotBefore();
  s->not_after = signer.cert.NotAfter();

  // The algorithm X509_sign would write: the digest Go would choose, no parameters for ECDSA,
  // NULL for RSA PKCS#1.
  const EVP_MD* legacy = DigestFor(key);
  int sig_nid = NID_undef;
  if ((!IsEc(key) && !IsRsa(key)) ||
      OBJ_find_sigid_by_algs(&sig_nid, EVP_MD_get_type(legacy), EVP_PKEY_get_base_id(key)) != 1) {
    ClearOsslErrors();
    return FailedPrecondition("the signing key (" + DescribeKey(key) + ") is not an EC or RSA key");
  }
  s->md = FetchedDigest(EVP_MD_get_type(legacy));
  std::string alg;
  if (s->md == nullptr || !der::AppendOid(&alg, sig_nid)) {
    return OsslError(Code::kInternal, "preparing the signature algorithm failed");
  }
  if (IsRsa(key)) alg += std::string("\x05\x00", 2);
  s->sig_alg = der::Tlv(der::kSequence, alg);

  unsigned char* name = nullptr;
  const int name_len = i2d_X509_NAME(X509_get_subject_name(cert), &name);
  if (name_len <= 0) return OsslError(Code::kInternal, "encoding the issuer name failed");
  s->issuer.assign(reinterpret_cast<char*>(name), static_cast<size_t>(name_len));
  OPENSSL_free(name);

  // keyid:always: the signer's own SKID, and no leaf without one.
  const ASN1_OCTET_STRING* skid = X509_get0_subject_key_id(cert);
  if (skid == nullptr) {
    ClearOsslErrors();
    return FailedPrecondition(
        "the signing certificate has no subject key identifier (a leaf's authority key "
        "identifier is made from it)");
  }
  std::string keyid;
  der::AppendTlv(&keyid, 0x80,  // [0] IMPLICIT KeyIdentifier
                 std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(skid)),
                                  static_cast<size_t>(ASN1_STRING_length(skid))));
  std::string akid;
  der::AppendOid(&akid, NID_authority_key_identifier);
  der::AppendTlv(&akid, der::kOctetString, der::Tlv(der::kSequence, keyid));
  s->akid = der::Tlv(der::kSequence, akid);

  s->sign_ctx.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (s->sign_ctx == nullptr || EVP_PKEY_sign_init(s->sign_ctx.get()) != 1 ||
      (IsRsa(key) && EVP_PKEY_CTX_set_rsa_padding(s->sign_ctx.get(), RSA_PKCS1_PADDING) != 1) ||
      EVP_PKEY_CTX_set_signature_md(s->sign_ctx.get(), s->md) != 1) {
    return OsslError(Code::kInternal, "preparing the signing key failed");
  }
  return s;
}

// This thread's LeafSigner for `signer`: the two most recent are kept (a bundle swap, a test
// with two CAs), made on first use. Per thread because an EVP_PKEY_CTX is not for concurrent
// use; no lock on the path. A thread keeps a reference to a retired signer's key until it
// signs under two newer ones or exits.
Result<LeafSigner*> LeafSignerFor(const Signer& signer) {
  thread_local std::unique_ptr<LeafSigner> cache[2];
  X509* cert = signer.cert.get();
  EVP_PKEY* key = signer.key.get();
  for (auto& entry : cache) {
    if (entry != nullptr && entry->cert.get() == cert && entry->key.get() == key) {
      if (&entry != &cache[0]) std::swap(entry, cache[0]);
      return cache[0].get();
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<LeafSigner> made, MakeLeafSigner(signer));
  cache[1] = std::move(cache[0]);
  cache[0] = std::move(made);
  return cache[0].get();
}

// Appends the SubjectPublicKeyInfo of an EC or RSA public key, built from its raw values
// (i2d_PUBKEY runs OpenSSL 3.0's provider encoders, which cost several times this), and
// returns where the subjectPublicKey BIT STRING's contents (after the unused-bits octet) are.
Result<std::pair<size_t, size_t>> AppendSubjectPublicKeyInfo(std::string* out, EVP_PKEY* key) {
  std::string alg;
  std::string bits(1, '\0');  // no unused bits
  if (IsEc(key)) {
    char group[64] = {0};
    unsigned char point[1 + 2 * 66];  // an uncompressed point on up to P-521
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point),
        OSSL_PARAM_END};
    if (EVP_PKEY_get_params(key, params) != 1 || !OSSL_PARAM_modified(&params[0]) ||
        !OSSL_PARAM_modified(&params[1])) {
      return OsslError(Code::kInvalidArgument, "reading the EC public key failed");
    }
    const int curve =
        OBJ_txt2nid(group) != NID_undef ? OBJ_txt2nid(group) : EC_curve_nist2nid(group);
    if (curve == NID_undef || !der::AppendOid(&alg, NID_X9_62_id_ecPublicKey) ||
        !der::AppendOid(&alg, curve)) {
      ClearOsslErrors();
      return InvalidArgument(std::string("unknown EC curve ") + group);
    }
    bits.append(reinterpret_cast<char*>(point), params[1].return_size);
  } else if (IsRsa(key)) {
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    const bool got = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
                     EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) == 1;
    UniquePtr<BIGNUM> n_owner(n), e_owner(e);
    if (!got) return OsslError(Code::kInvalidArgument, "reading the RSA public key failed");
    std::string ints;
    for (const BIGNUM* bn : {n, e}) {
      std::string mag(static_cast<size_t>(BN_num_bytes(bn)), '\0');
      BN_bn2bin(bn, reinterpret_cast<unsigned char*>(mag.data()));  // exactly that many bytes
      der::AppendUnsignedInteger(&ints, mag);
    }
    der::AppendOid(&alg, NID_rsaEncryption);
    alg += std::string("\x05\x00", 2);
    der::AppendTlv(&bits, der::kSequence, ints);  // RSAPublicKey ::= SEQUENCE { n, e }
  } else {
    return InvalidArgument("key type " + DescribeKey(key) + " is not accepted (use RSA or EC)");
  }
  std::string spki_body = der::Tlv(der::kSequence, alg);
  der::AppendHeader(&spki_body, der::kBitString, bits.size());
  const size_t bits_at = spki_body.size() + 1;
  spki_body += bits;
  der::AppendHeader(out, der::kSequence, spki_body.size());
  const size_t start = out->size();
  out->append(spki_body);
  return std::make_pair(start + bits_at, bits.size() - 1);
}

// subjectAltName, critical because the subject is empty (RFC 5280 4.2.1.6; Istio since 1.2):
// URIs first, then DNS names, as IA5String bytes unchanged.
std::string SanExtension(const std::vector<std::string>& uris,
                         const std::vector<std::string>& dns_names) {
  std::string names;
  for (const std::string& u : uris)
    der::AppendTlv(&names, 0x86, u);  // [6] uniformResourceIdentifier
  for (const std::string& d : dns_names) der::AppendTlv(&names, 0x82, d);  // [2] dNSName
  std::string ext;
  der::AppendOid(&ext, NID_subject_alt_name);
  der::AppendTlv(&ext, der::kBoolean, std::string_view("\xff", 1));
  der::AppendTlv(&ext, der::kOctetString, der::Tlv(der::kSequence, names));
  return der::Tlv(der::kSequence, ext);
}

// If `spki` is the canonical DER of an uncompressed point on P-256 or P-384, as
// AppendSubjectPublicKeyInfo would write it, the length of that point (it ends the DER): such a
// SubjectPublicKeyInfo is copied into a certificate as is. Otherwise 0 (a compressed point, a
// long-form length, another curve: encoded anew from the key).
size_t CanonicalEcPointLength(std::string_view spki) {
  struct Shape {
    std::string prefix;  // everything before the point's coordinates
    size_t size = 0;
  };
  static const std::array<Shape, 2> kShapes = [] {
    std::array<Shape, 2> shapes;
    const std::pair<int, size_t> kCurves[] = {{NID_X9_62_prime256v1, 32}, {NID_secp384r1, 48}};
    for (size_t i = 0; i < shapes.size(); ++i) {
      const auto [curve, field_bytes] = kCurves[i];
      std::string alg;
      der::AppendOid(&alg, NID_X9_62_id_ecPublicKey);
      der::AppendOid(&alg, curve);
      std::string bits("\x00\x04", 2);
      bits.append(2 * field_bytes, '\0');
      std::string body = der::Tlv(der::kSequence, alg);
      der::AppendTlv(&body, der::kBitString, bits);
      const std::string whole = der::Tlv(der::kSequence, body);
      shapes[i] = {whole.substr(0, whole.size() - 2 * field_bytes), whole.size()};
    }
    return shapes;
  }();
  for (const Shape& shape : kShapes) {
    if (spki.size() == shape.size && spki.substr(0, shape.prefix.size()) == shape.prefix) {
      return shape.size - shape.prefix.size() + 1;  // with the 0x04 that opens it
    }
  }
  return 0;
}

std::string Hex(const unsigned char* bytes, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (size_t i = 0; i < len; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 15];
  }
  return out;
}

// `spki_der`: the key's SubjectPublicKeyInfo to copy if canonical, or empty.
Result<Certificate> IssueLeafWith(const Signer& signer, EVP_PKEY* subject_key,
                                  std::string_view spki_der, const LeafTemplate& tmpl,
                                  TimePoint now) {
  if (signer.cert.get() == nullptr || signer.key.get() == nullptr) {
    return FailedPrecondition("the CA is not loaded");
  }
  ASSIGN_OR_RETURN(LeafSigner * ls, LeafSignerFor(signer));
  if (now >= ls->not_after) {
    return FailedPrecondition("the signing certificate expired at " + FormatRfc3339(ls->not_after));
  }
  if (now < ls->not_before) {
    return FailedPrecondition("the signing certificate is not valid until " +
                              FormatRfc3339(ls->not_before));
  }
  if (tmpl.ttl <= Duration::zero()) return InvalidArgument("certificate TTL must be positive");
  if (tmpl.uris.empty() && tmpl.dns_names.empty()) {
    return InvalidArgument("a workload certificate needs at least one identity");
  }
  RETURN_IF_ERROR(CheckAcceptableKey(subject_key));
  const TimePoint requested_end = now + std::chrono::duration_cast<TimePoint::duration>(tmpl.ttl);
  const int64_t not_before = UnixSeconds(now - kClockSkewBackdate);
  const int64_t not_after = UnixSeconds(std::min(requested_end, ls->not_after));
  const std::string& fixed_exts = FixedLeafExtensionsDer();
  if (fixed_exts.empty()) return Internal("encoding the leaf extensions failed");

  // TBSCertificate ::= SEQUENCE { [0] version v3, serialNumber, signature, issuer, validity,
  //                               subject (empty), subjectPublicKeyInfo, [3] extensions }
  std::string body;
  body.reserve(1024);
  body.append("\xa0\x03\x02\x01\x02", 5);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1)
    return OsslError(Code::kInternal, "RAND_bytes failed");
  serial[0] &= 0x7F;                     // positive INTEGER; 127 random bits in 16 bytes
  if (serial[0] == 0) serial[0] = 0x01;  // and always 16 bytes long
  der::AppendTlv(&body, der::kInteger,
                 std::string_view(reinterpret_cast<char*>(serial), sizeof serial));
  body += ls->sig_alg;
  body += ls->issuer;
  std::string validity;
  if (!der::AppendTime(&validity, not_before) || !der::AppendTime(&validity, not_after)) {
    return InvalidArgument("the certificate validity is outside the years 0000 to 9999");
  }
  der::AppendTlv(&body, der::kSequence, validity);
  body.append("\x30\x00", 2);
  std::pair<size_t, size_t> key_bits;  // where the subjectPublicKey contents are in `body`
  if (const size_t point_len = CanonicalEcPointLength(spki_der);
      point_len != 0 && IsEc(subject_key)) {
    key_bits = {body.size() + spki_der.size() - point_len, point_len};
    body.append(spki_der);
  } else {
    ASSIGN_OR_RETURN(key_bits, AppendSubjectPublicKeyInfo(&body, subject_key));
  }

  // SKID as OpenSSL's "hash": SHA-1 of the subjectPublicKey contents.
  unsigned char skid[EVP_MAX_MD_SIZE];
  unsigned int skid_len = 0;
  if (EVP_Digest(body.data() + key_bits.first, key_bits.second, skid, &skid_len,
                 FetchedDigest(NID_sha1), nullptr) != 1) {
    return OsslError(Code::kInternal, "hashing the subject key failed");
  }
  std::string skid_ext;
  der::AppendOid(&skid_ext, NID_subject_key_identifier);
  der::AppendTlv(
      &skid_ext, der::kOctetString,
      der::Tlv(der::kOctetString, std::string_view(reinterpret_cast<char*>(skid), skid_len)));
  std::string exts = fixed_exts;  // KU, EKU, BC, then SKID, AKID, SAN
  der::AppendTlv(&exts, der::kSequence, skid_ext);
  exts += ls->akid;
  exts += SanExtension(tmpl.uris, tmpl.dns_names);
  std::string exts_seq = der::Tlv(der::kSequence, exts);
  der::AppendTlv(&body, 0xa3, exts_seq);  // [3] EXPLICIT Extensions
  const std::string tbs = der::Tlv(der::kSequence, body);

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  std::string sig(1 + static_cast<size_t>(EVP_PKEY_get_size(ls->key.get())), '\0');
  size_t sig_len = sig.size() - 1;
  if (EVP_Digest(tbs.data(), tbs.size(), digest, &digest_len, ls->md, nullptr) != 1 ||
      EVP_PKEY_sign(ls->sign_ctx.get(), reinterpret_cast<unsigned char*>(sig.data()) + 1, &sig_len,
                    digest, digest_len) != 1) {
    return OsslError(Code::kInternal, "signing the certificate failed");
  }
  sig.resize(1 + sig_len);  // the unused-bits octet, then the signature

  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
  std::string cert_body = tbs;
  cert_body += ls->sig_alg;
  der::AppendTlv(&cert_body, der::kBitString, sig);
  if (EVP_PKEY_up_ref(subject_key) != 1) {
    return OsslError(Code::kInternal, "keeping the key failed");
  }
  return internal::MakeIssuedCertificate(
      der::Tlv(der::kSequence, cert_body),
      {Hex(serial, sizeof serial), FromUnixSeconds(not_before), FromUnixSeconds(not_after)},
      UniquePtr<EVP_PKEY>(subject_key));
}

}  // namespace

Result<Certificate> IssueLeaf(const Signer& signer, EVP_PKEY* subject_key, const LeafTemplate& tmpl,
                              TimePoint now) {
  return IssueLeafWith(signer, subject_key, {}, tmpl, now);
}

Result<Certificate> IssueLeaf(const Signer& signer, const Csr& csr, const LeafTemplate& tmpl,
                              TimePoint now) {
  return IssueLeafWith(signer, csr.PublicKey(), csr.SubjectPublicKeyInfoDer(), tmpl, now);
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
