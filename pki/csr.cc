#include "pki/csr.h"

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <mutex>
#include <vector>

#include "pki/digest.h"
#include "pki/general_names.h"
#include "pki/pem.h"

namespace istioca::pki {
namespace {

using ExtStack = std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)>;

void FreeExtStack(STACK_OF(X509_EXTENSION) * s) {
  sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}

}  // namespace

Result<Csr> Csr::Build(const PrivateKey& key, const CsrOptions& options) {
  UniquePtr<X509_REQ> req(X509_REQ_new());
  if (req == nullptr || X509_REQ_set_version(req.get(), 0) != 1) {
    return OsslError(Code::kInternal, "allocating CSR failed");
  }
  if (!options.organization.empty()) {
    X509_NAME* name = X509_REQ_get_subject_name(req.get());
    if (X509_NAME_add_entry_by_txt(
            name, "O", MBSTRING_UTF8,
            reinterpret_cast<const unsigned char*>(options.organization.data()),
            static_cast<int>(options.organization.size()), -1, 0) != 1) {
      return OsslError(Code::kInvalidArgument,
                       "the CSR organization is not usable as a subject O= (it must be valid UTF-8 "
                       "of at most 64 characters)");
    }
  }
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1) {
    return OsslError(Code::kInvalidArgument, "unusable CSR key");
  }
  if (!options.uris.empty() || !options.dns_names.empty()) {
    ASSIGN_OR_RETURN(UniquePtr<GENERAL_NAMES> sans,
                     MakeGeneralNames(options.uris, options.dns_names));
    ExtStack exts(sk_X509_EXTENSION_new_null(), FreeExtStack);
    // Critical when the subject is empty (RFC 5280 4.2.1.6), as Istio does since 1.2.
    UniquePtr<X509_EXTENSION> ext(
        X509V3_EXT_i2d(NID_subject_alt_name, options.organization.empty() ? 1 : 0, sans.get()));
    if (exts == nullptr || ext == nullptr || sk_X509_EXTENSION_push(exts.get(), ext.get()) <= 0) {
      return OsslError(Code::kInternal, "encoding SAN extension for CSR failed");
    }
    ext.release();  // the stack owns it now
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
      return OsslError(Code::kInternal, "adding SAN extension to CSR failed");
    }
  }
  if (X509_REQ_sign(req.get(), key.get(), DigestFor(key.get())) <= 0) {
    return OsslError(Code::kInternal, "signing CSR failed");
  }
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(req.get(), &der);
  if (len <= 0) return OsslError(Code::kInternal, "encoding CSR failed");
  auto csr = FromDer(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
  OPENSSL_free(der);
  return csr;
}

namespace {

// One DER TLV: the tag, where its header starts, and its contents.
struct Tlv {
  int tag = 0;
  int xclass = 0;
  bool constructed = false;
  const unsigned char* header = nullptr;
  const unsigned char* body = nullptr;
  long length = 0;
  std::string_view Whole() const {
    return {reinterpret_cast<const char*>(header), static_cast<size_t>(body + length - header)};
  }
  std::string_view Body() const {
    return {reinterpret_cast<const char*>(body), static_cast<size_t>(length)};
  }
};

// Reads the TLV at *p (not past `end`) and advances *p beyond it. DER only: no indefinite length.
bool ReadTlv(const unsigned char** p, const unsigned char* end, Tlv* out) {
  if (*p >= end) return false;
  out->header = *p;
  const unsigned char* q = *p;
  const int r = ASN1_get_object(&q, &out->length, &out->tag, &out->xclass, end - *p);
  if ((r & 0x80) != 0 || (r & 0x01) != 0 || out->length < 0 || q + out->length > end) {
    ClearOsslErrors();
    return false;
  }
  out->constructed = (r & V_ASN1_CONSTRUCTED) != 0;
  out->body = q;
  *p = q + out->length;
  return true;
}

// A universal-class TLV with this tag (and the constructed bit DER requires for it).
bool Is(const Tlv& t, int tag) {
  const bool constructed = tag == V_ASN1_SEQUENCE || tag == V_ASN1_SET;
  return t.xclass == V_ASN1_UNIVERSAL && t.tag == tag && t.constructed == constructed;
}
bool IsSequence(const Tlv& t) { return Is(t, V_ASN1_SEQUENCE); }

// The NID of a DER OBJECT IDENTIFIER TLV, or NID_undef.
int OidNid(const Tlv& t) {
  if (!Is(t, V_ASN1_OBJECT)) return NID_undef;
  const unsigned char* q = t.header;
  UniquePtr<ASN1_OBJECT> obj(d2i_ASN1_OBJECT(nullptr, &q, t.body + t.length - t.header));
  ClearOsslErrors();
  return obj == nullptr ? NID_undef : OBJ_obj2nid(obj.get());
}

Status Malformed(const std::string& what) { return InvalidArgument("malformed CSR: " + what); }

UniquePtr<EVP_PKEY> FromParams(const char* type, OSSL_PARAM* params) {
  UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    ClearOsslErrors();
    return nullptr;
  }
  return UniquePtr<EVP_PKEY>(key);
}

// A public-only key on `curve` (P-256, P-384, P-521), made once per process and never changed,
// whose domain parameters every imported key of that curve copies. EVP_PKEY_fromdata rebuilds
// the group from its name on every import (Montgomery setup, a modular inverse): a sixth of the
// whole CSR→certificate pipeline under perf. EVP_PKEY_dup copies the built group instead.
EVP_PKEY* CurveTemplate(int curve) {
  // Plain pointers with static storage: reachable until exit, never freed (like OpenSSL's own
  // built-in tables), so no destructor can run after a thread still using them.
  static std::once_flag once;
  static EVP_PKEY* templates[3] = {};
  static const int kCurves[3] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
  std::call_once(once, [] {
    for (int i = 0; i < 3; ++i) {
      UniquePtr<EC_GROUP> group(EC_GROUP_new_by_curve_name(kCurves[i]));
      if (group == nullptr) continue;
      // The generator is a valid public point, and nobody's key.
      unsigned char* point = nullptr;
      const size_t len = EC_POINT_point2buf(group.get(), EC_GROUP_get0_generator(group.get()),
                                            POINT_CONVERSION_UNCOMPRESSED, &point, nullptr);
      OSSL_PARAM params[] = {
          OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                           const_cast<char*>(OBJ_nid2sn(kCurves[i])), 0),
          OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, len), OSSL_PARAM_END};
      templates[i] = FromParams("EC", params).release();
      OPENSSL_free(point);
    }
  });
  for (int i = 0; i < 3; ++i) {
    if (kCurves[i] == curve) return templates[i];
  }
  return nullptr;
}

// An EC public key on a named curve: a copy of the curve's template with the point replaced
// (the point is checked to be on the curve, as by EVP_PKEY_fromdata). Null when the bytes are
// not a point on the curve.
UniquePtr<EVP_PKEY> EcPublicKey(int curve, const char* group, unsigned char* point, size_t len) {
  if (EVP_PKEY* tmpl = CurveTemplate(curve)) {
    UniquePtr<EVP_PKEY> key(EVP_PKEY_dup(tmpl));
    if (key != nullptr && EVP_PKEY_set1_encoded_public_key(key.get(), point, len) == 1) return key;
    ClearOsslErrors();
    return nullptr;
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, len), OSSL_PARAM_END};
  return FromParams("EC", params);
}

// SubjectPublicKeyInfo → key. EC (named curves) and RSA are imported from their raw values.
Result<UniquePtr<EVP_PKEY>> ParsePublicKey(const Tlv& spki) {
  const unsigned char* p = spki.body;
  const unsigned char* end = spki.body + spki.length;
  Tlv alg, bits;
  if (!ReadTlv(&p, end, &alg) || !IsSequence(alg) || !ReadTlv(&p, end, &bits) || p != end ||
      !Is(bits, V_ASN1_BIT_STRING) || bits.length < 1 || bits.body[0] != 0) {
    return Malformed("bad SubjectPublicKeyInfo");
  }
  const unsigned char* a = alg.body;
  const unsigned char* aend = alg.body + alg.length;
  Tlv oid, param;
  if (!ReadTlv(&a, aend, &oid)) return Malformed("bad public key algorithm");
  const bool has_param = a < aend;
  if (has_param && (!ReadTlv(&a, aend, &param) || a != aend))
    return Malformed("bad public key algorithm");
  const int key_nid = OidNid(oid);
  auto* key_bytes = const_cast<unsigned char*>(bits.body + 1);
  const size_t key_len = static_cast<size_t>(bits.length - 1);
  if (key_nid == NID_X9_62_id_ecPublicKey && has_param) {
    const int curve = OidNid(param);
    const char* group = curve == NID_undef ? nullptr : OBJ_nid2sn(curve);
    if (group != nullptr) {
      if (UniquePtr<EVP_PKEY> key = EcPublicKey(curve, group, key_bytes, key_len)) return key;
      return InvalidArgument("CSR public key is not a valid point on " + std::string(group));
    }
  } else if (key_nid == NID_rsaEncryption) {
    const unsigned char* r = key_bytes;
    const unsigned char* rend = key_bytes + key_len;
    Tlv seq, n, e;
    if (!ReadTlv(&r, rend, &seq) || !IsSequence(seq) || r != rend)
      return Malformed("bad RSA public key");
    const unsigned char* s = seq.body;
    const unsigned char* send = seq.body + seq.length;
    if (!ReadTlv(&s, send, &n) || !ReadTlv(&s, send, &e) || s != send || !Is(n, V_ASN1_INTEGER) ||
        !Is(e, V_ASN1_INTEGER) || n.length < 1 || e.length < 1 || (n.body[0] & 0x80) ||
        (e.body[0] & 0x80)) {
      return Malformed("bad RSA public key");
    }
    UniquePtr<BIGNUM> bn_n(BN_bin2bn(n.body, static_cast<int>(n.length), nullptr));
    UniquePtr<BIGNUM> bn_e(BN_bin2bn(e.body, static_cast<int>(e.length), nullptr));
    // OSSL_PARAM integers are native-endian unsigned byte strings.
    std::vector<unsigned char> nb(static_cast<size_t>(BN_num_bytes(bn_n.get())) + 1);
    std::vector<unsigned char> eb(static_cast<size_t>(BN_num_bytes(bn_e.get())) + 1);
    if (BN_bn2nativepad(bn_n.get(), nb.data(), static_cast<int>(nb.size())) < 0 ||
        BN_bn2nativepad(bn_e.get(), eb.data(), static_cast<int>(eb.size())) < 0) {
      return Malformed("bad RSA public key");
    }
    OSSL_PARAM params[] = {OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_N, nb.data(), nb.size()),
                           OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_E, eb.data(), eb.size()),
                           OSSL_PARAM_END};
    if (UniquePtr<EVP_PKEY> key = FromParams("RSA", params)) return key;
    return InvalidArgument("CSR RSA public key cannot be imported");
  }
  // Anything else (Ed25519, explicit curve parameters, ...): OpenSSL's generic decoder.
  const unsigned char* q = spki.header;
  UniquePtr<EVP_PKEY> key(d2i_PUBKEY(nullptr, &q, spki.body + spki.length - spki.header));
  if (key == nullptr) return OsslError(Code::kInvalidArgument, "CSR public key cannot be decoded");
  return key;
}

// The extensions of the first extensionRequest attribute, or null when there is none.
Result<STACK_OF(X509_EXTENSION) *> ParseAttributes(const Tlv& attrs) {
  const unsigned char* p = attrs.body;
  const unsigned char* end = attrs.body + attrs.length;
  STACK_OF(X509_EXTENSION)* found = nullptr;
  while (p < end) {
    Tlv attr, oid, values, value;
    if (!ReadTlv(&p, end, &attr) || !IsSequence(attr)) return Malformed("bad attribute");
    const unsigned char* a = attr.body;
    const unsigned char* aend = attr.body + attr.length;
    if (!ReadTlv(&a, aend, &oid) || !ReadTlv(&a, aend, &values) || a != aend ||
        !Is(values, V_ASN1_SET)) {
      return Malformed("bad attribute");
    }
    if (OidNid(oid) != NID_ext_req) continue;
    const unsigned char* v = values.body;
    if (found != nullptr || !ReadTlv(&v, values.body + values.length, &value) ||
        v != values.body + values.length) {
      sk_X509_EXTENSION_pop_free(found, X509_EXTENSION_free);
      return Malformed("extensionRequest must appear once with one value");
    }
    const unsigned char* q = value.header;
    found = d2i_X509_EXTENSIONS(nullptr, &q, value.body + value.length - value.header);
    if (found == nullptr || q != value.body + value.length) {
      sk_X509_EXTENSION_pop_free(found, X509_EXTENSION_free);
      return OsslError(Code::kInvalidArgument, "malformed CSR: bad extensionRequest");
    }
  }
  for (const int nid : {NID_subject_alt_name, NID_basic_constraints}) {
    if (found != nullptr &&
        X509v3_get_ext_by_NID(found, nid, X509v3_get_ext_by_NID(found, nid, -1)) >= 0) {
      sk_X509_EXTENSION_pop_free(found, X509_EXTENSION_free);
      return InvalidArgument(std::string("CSR repeats the ") + OBJ_nid2ln(nid) + " extension");
    }
  }
  return found;
}

// Whether `sig` is the signature of `tbs` by `key` with digest `md_nid`. EC and RSA with a
// common digest: the digest made with a pre-fetched implementation, then EVP_PKEY_verify on it
// (EVP_DigestVerifyInit fetches the digest and the signature algorithm anew on every call).
// Anything else (Ed25519, which has no separate digest; a rare digest): EVP_DigestVerify.
bool SignatureVerifies(EVP_PKEY* key, int md_nid, std::string_view tbs, const unsigned char* sig,
                       size_t sig_len) {
  const auto* data = reinterpret_cast<const unsigned char*>(tbs.data());
  const EVP_MD* md = md_nid == NID_undef ? nullptr : FetchedDigest(md_nid);
  if (md != nullptr && (IsEc(key) || IsRsa(key))) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    // For ECDSA no digest is set on the context: it verifies the digest bytes it is given.
    return ctx != nullptr && EVP_Digest(data, tbs.size(), digest, &digest_len, md, nullptr) == 1 &&
           EVP_PKEY_verify_init(ctx.get()) == 1 &&
           (!IsRsa(key) || (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) == 1 &&
                            EVP_PKEY_CTX_set_signature_md(ctx.get(), md) == 1)) &&
           EVP_PKEY_verify(ctx.get(), sig, sig_len, digest, digest_len) == 1;
  }
  const EVP_MD* legacy = md_nid == NID_undef ? nullptr : EVP_get_digestbynid(md_nid);
  UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  return ctx != nullptr && EVP_DigestVerifyInit(ctx.get(), nullptr, legacy, nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), sig, sig_len, data, tbs.size()) == 1;
}

}  // namespace

Result<Csr> Csr::FromDer(std::string_view der) {
  // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature }
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = p + der.size();
  Tlv outer, info, sig_alg, sig;
  if (!ReadTlv(&p, end, &outer) || !IsSequence(outer) || p != end)
    return Malformed("not a DER SEQUENCE");
  p = outer.body;
  const unsigned char* oend = outer.body + outer.length;
  if (!ReadTlv(&p, oend, &info) || !IsSequence(info) || !ReadTlv(&p, oend, &sig_alg) ||
      !IsSequence(sig_alg) || !ReadTlv(&p, oend, &sig) || p != oend ||
      !Is(sig, V_ASN1_BIT_STRING) || sig.length < 2 || sig.body[0] != 0) {
    return Malformed("expected request info, signature algorithm and signature");
  }
  // CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name, subjectPKInfo,
  //                                         attributes [0] IMPLICIT SET OF Attribute }
  const unsigned char* i = info.body;
  const unsigned char* iend = info.body + info.length;
  Tlv version, subject, spki, attrs;
  if (!ReadTlv(&i, iend, &version) || !Is(version, V_ASN1_INTEGER) || version.length != 1 ||
      version.body[0] != 0) {
    return Malformed("version must be 1 (0)");
  }
  if (!ReadTlv(&i, iend, &subject) || !IsSequence(subject) || !ReadTlv(&i, iend, &spki) ||
      !IsSequence(spki)) {
    return Malformed("bad subject or public key");
  }
  const bool has_attrs = i < iend;
  if (has_attrs && (!ReadTlv(&i, iend, &attrs) || attrs.xclass != V_ASN1_CONTEXT_SPECIFIC ||
                    attrs.tag != 0 || !attrs.constructed || i != iend)) {
    return Malformed("bad attributes");
  }
  ASSIGN_OR_RETURN(UniquePtr<EVP_PKEY> key, ParsePublicKey(spki));

  // Proof of possession: the request info is signed by the key it carries.
  // AlgorithmIdentifier: the OID, then for RSA PKCS#1 an optional NULL; ECDSA and EdDSA have none.
  const unsigned char* a = sig_alg.body;
  const unsigned char* aend = sig_alg.body + sig_alg.length;
  Tlv sig_oid, sig_param;
  if (!ReadTlv(&a, aend, &sig_oid)) return Malformed("bad signature algorithm");
  if (a < aend && (!ReadTlv(&a, aend, &sig_param) || a != aend || !Is(sig_param, V_ASN1_NULL) ||
                   sig_param.length != 0 || !IsRsa(key.get()))) {
    return Malformed("bad signature algorithm parameters");
  }
  int md_nid = NID_undef, pk_nid = NID_undef;
  const int sig_nid = OidNid(sig_oid);
  if (sig_nid == NID_undef || OBJ_find_sigid_algs(sig_nid, &md_nid, &pk_nid) != 1 ||
      pk_nid != EVP_PKEY_get_base_id(key.get())) {
    ClearOsslErrors();
    return InvalidArgument("CSR signature algorithm is not supported or does not match its key");
  }
  if (!SignatureVerifies(key.get(), md_nid, info.Whole(), sig.body + 1,
                         static_cast<size_t>(sig.length - 1))) {
    return OsslError(Code::kInvalidArgument,
                     "CSR signature does not verify (no proof of possession of the key)");
  }

  STACK_OF(X509_EXTENSION)* exts = nullptr;
  if (has_attrs) {
    ASSIGN_OR_RETURN(exts, ParseAttributes(attrs));
  }
  Csr csr;
  csr.der_ = std::string(der);
  csr.spki_offset_ =
      static_cast<size_t>(spki.header - reinterpret_cast<const unsigned char*>(der.data()));
  csr.spki_length_ = spki.Whole().size();
  csr.key_ = std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
  csr.extensions_ = std::shared_ptr<STACK_OF(X509_EXTENSION)>(exts, FreeExtStack);
  return csr;
}

Result<Csr> Csr::FromPem(std::string_view pem) {
  if (pem.size() > kMaxPemSize) {
    return InvalidArgument("CSR is larger than " + std::to_string(kMaxPemSize / 1024) + " KiB");
  }
  ASSIGN_OR_RETURN(std::vector<PemBlock> blocks, ParsePem(pem));
  if (blocks.size() != 1) return InvalidArgument("expected exactly one PEM block in the CSR");
  if (blocks[0].type != "CERTIFICATE REQUEST" && blocks[0].type != "NEW CERTIFICATE REQUEST") {
    return InvalidArgument("expected a CERTIFICATE REQUEST PEM block, found " + blocks[0].type);
  }
  return FromDer(blocks[0].der);
}

std::string Csr::ToPem() const { return EncodePem("CERTIFICATE REQUEST", der_); }

std::vector<std::string> Csr::UriSans() const { return Sans(GEN_URI); }
std::vector<std::string> Csr::DnsSans() const { return Sans(GEN_DNS); }

std::vector<std::string> Csr::Sans(int type) const {
  std::vector<std::string> out;
  if (extensions_ == nullptr) return out;
  UniquePtr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(
      X509V3_get_d2i(extensions_.get(), NID_subject_alt_name, nullptr, nullptr)));
  ClearOsslErrors();
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != type) continue;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.ia5)),
                     static_cast<size_t>(ASN1_STRING_length(gn->d.ia5)));
  }
  return out;
}

bool Csr::RequestsCa() const {
  if (extensions_ == nullptr) return false;
  UniquePtr<BASIC_CONSTRAINTS> bc(static_cast<BASIC_CONSTRAINTS*>(
      X509V3_get_d2i(extensions_.get(), NID_basic_constraints, nullptr, nullptr)));
  ClearOsslErrors();
  return bc != nullptr && bc->ca != 0;
}

}  // namespace istioca::pki
