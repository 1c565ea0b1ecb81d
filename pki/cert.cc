#include "pki/cert.h"

#include <openssl/pem.h>
#include <openssl/sha.h>

#include <cstring>

#include "pki/key.h"
#include "pki/pem.h"
#include "pki/spiffe.h"

namespace istioca::pki {
namespace {

TimePoint FromAsn1Time(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return TimePoint{};
  return FromUnixSeconds(static_cast<int64_t>(timegm(&tm)));
}

std::string NameToString(const X509_NAME* name) {
  if (name == nullptr || X509_NAME_entry_count(name) == 0) return "";
  UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  // A name that cannot be printed is shown as such, never as an empty (absent) subject.
  if (bio == nullptr ||
      X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
    ClearOsslErrors();
    return "<unprintable name>";
  }
  return BioToString(bio.get());
}

std::string GeneralNameString(const ASN1_IA5STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

std::vector<std::string> SansOfType(X509* x509, int type) {
  std::vector<std::string> out;
  UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x509, NID_subject_alt_name, nullptr, nullptr)));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != type) continue;
    if (type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = gn->d.iPAddress;
      const unsigned char* b = ASN1_STRING_get0_data(ip);
      char buf[64] = {0};
      if (ASN1_STRING_length(ip) == 4) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
      } else if (ASN1_STRING_length(ip) == 16) {
        std::string v6;
        for (int k = 0; k < 16; k += 2) {
          char part[8];
          std::snprintf(part, sizeof part, "%s%x", k ? ":" : "", (b[k] << 8) | b[k + 1]);
          v6 += part;
        }
        std::snprintf(buf, sizeof buf, "%s", v6.c_str());
      } else {
        std::snprintf(buf, sizeof buf, "<invalid IP of %d bytes>", ASN1_STRING_length(ip));
      }
      out.emplace_back(buf);
    } else {
      out.push_back(GeneralNameString(gn->d.ia5));
    }
  }
  return out;
}

}  // namespace

std::string HexColons(std::string_view bytes) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i) out += ':';
    const auto b = static_cast<uint8_t>(bytes[i]);
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

struct Certificate::Encoding {
  explicit Encoding(std::string d) : der(std::move(d)) {}
  const std::string der;
  std::once_flag pem_once;
  std::string pem;  // set once, under pem_once
};

Certificate::Certificate(UniquePtr<X509>&& x509, std::string der)
    : x509_(std::move(x509)), der_(std::make_shared<Encoding>(std::move(der))) {}

struct Certificate::Issued {
  internal::IssuedFields fields;
  UniquePtr<EVP_PKEY> public_key;
  std::once_flag once;
  UniquePtr<X509> x509;  // decoded from the DER on first use
};

namespace internal {
Certificate MakeIssuedCertificate(std::string der, IssuedFields fields,
                                  UniquePtr<EVP_PKEY>&& public_key) {
  Certificate c;
  c.der_ = std::make_shared<Certificate::Encoding>(std::move(der));
  c.issued_ = std::make_shared<Certificate::Issued>();
  c.issued_->fields = std::move(fields);
  c.issued_->public_key = std::move(public_key);
  return c;
}
}  // namespace internal

Result<Certificate> Certificate::Adopt(UniquePtr<X509>&& cert) {
  if (cert == nullptr) return Internal("adopting a certificate: no certificate");
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  if (len <= 0 || der == nullptr) {
    return OsslError(Code::kInternal, "encoding the certificate as DER failed");
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return Certificate(std::move(cert), std::move(out));
}

X509* Certificate::get() const {
  if (issued_ == nullptr) return x509_.get();
  std::call_once(issued_->once, [this] {
    const auto* p = reinterpret_cast<const unsigned char*>(ToDer().data());
    issued_->x509.reset(d2i_X509(nullptr, &p, static_cast<long>(ToDer().size())));
    ClearOsslErrors();
  });
  return issued_->x509.get();
}

EVP_PKEY* Certificate::PublicKey() const {
  if (issued_ != nullptr) return issued_->public_key.get();
  return X509_get0_pubkey(x509_.get());
}

Certificate::Certificate(const Certificate& other)
    : x509_(nullptr), der_(other.der_), issued_(other.issued_) {
  if (other.x509_ != nullptr) {
    X509_up_ref(other.x509_.get());
    x509_.reset(other.x509_.get());
  }
}

Certificate& Certificate::operator=(const Certificate& other) {
  if (this != &other) {
    Certificate copy(other);
    x509_ = std::move(copy.x509_);
    der_ = std::move(copy.der_);
    issued_ = std::move(copy.issued_);
  }
  return *this;
}

Result<Certificate> Certificate::FromDer(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  UniquePtr<X509> x509(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (x509 == nullptr) return OsslError(Code::kInvalidArgument, "not a valid X.509 certificate");
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return InvalidArgument("trailing data after the certificate");
  }
  // d2i keeps the encoding it read; that is what ToDer() returns.
  return Certificate(std::move(x509), std::string(der));
}

Result<std::vector<Certificate>> Certificate::ParsePemChain(std::string_view pem) {
  ASSIGN_OR_RETURN(std::vector<PemBlock> blocks, ParsePem(pem));
  std::vector<Certificate> certs;
  for (const PemBlock& block : blocks) {
    if (block.type == "CERTIFICATE") {
      auto cert = FromDer(block.der);
      if (!cert.ok()) {
        return cert.status().WithContext("PEM block CERTIFICATE at line " +
                                         std::to_string(block.line));
      }
      certs.push_back(std::move(cert).value());
    } else if (block.type == "CERTIFICATE REQUEST" || block.type == "NEW CERTIFICATE REQUEST") {
      return InvalidArgument("found a certificate signing request (line " +
                             std::to_string(block.line) + ") where a certificate was expected");
    } else if (block.type.find("PRIVATE KEY") == std::string::npos &&
               block.type != "EC PARAMETERS") {
      return InvalidArgument("unexpected PEM block " + block.type + " at line " +
                             std::to_string(block.line));
    }
  }
  if (certs.empty()) return InvalidArgument("no certificate found in the PEM data");
  return certs;
}

const std::string& Certificate::ToDer() const {
  static const std::string kMovedFrom;
  return der_ != nullptr ? der_->der : kMovedFrom;
}

std::string Certificate::ToPem() const {
  if (der_ == nullptr) return EncodePem("CERTIFICATE", ToDer());
  std::call_once(der_->pem_once, [this] { der_->pem = EncodePem("CERTIFICATE", der_->der); });
  return der_->pem;
}

TimePoint Certificate::NotBefore() const {
  if (issued_ != nullptr) return issued_->fields.not_before;
  return FromAsn1Time(X509_get0_notBefore(x509_.get()));
}
TimePoint Certificate::NotAfter() const {
  if (issued_ != nullptr) return issued_->fields.not_after;
  return FromAsn1Time(X509_get0_notAfter(x509_.get()));
}

bool Certificate::IsCa() const { return X509_check_ca(get()) > 0; }

bool Certificate::IsSelfSigned() const {
  const bool self = X509_self_signed(get(), 0) == 1;
  ClearOsslErrors();
  return self;
}

std::vector<std::string> Certificate::UriSans() const { return SansOfType(get(), GEN_URI); }
std::vector<std::string> Certificate::DnsSans() const { return SansOfType(get(), GEN_DNS); }

std::string Certificate::Sha256Fingerprint() const {
  // The digest of the DER, which X509_digest would re-encode from a decoded X509.
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (der_ == nullptr ||
      EVP_Digest(der_->der.data(), der_->der.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    ClearOsslErrors();
    return "";
  }
  return HexColons(std::string_view(reinterpret_cast<char*>(md), len));
}

std::string Certificate::SerialHex() const {
  if (issued_ != nullptr) return issued_->fields.serial_hex;
  UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x509_.get()), nullptr));
  if (bn == nullptr) return "";
  char* hex = BN_bn2hex(bn.get());
  std::string out(hex);
  OPENSSL_free(hex);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Certificate::Subject() const {
  X509* x = get();
  return x == nullptr ? "<undecodable certificate>" : NameToString(X509_get_subject_name(x));
}
std::string Certificate::Issuer() const {
  X509* x = get();
  return x == nullptr ? "<undecodable certificate>" : NameToString(X509_get_issuer_name(x));
}

// X509_cmp compares the DER (through its SHA-1 and then the encodings): equal DER is the same
// certificate. Copies share their encoding, which answers without reading it.
bool Certificate::operator==(const Certificate& other) const {
  if (der_ == other.der_) return true;
  return der_ != nullptr && other.der_ != nullptr && der_->der == other.der_->der;
}

CertInfo Describe(const Certificate& cert) {
  X509* x = cert.get();
  CertInfo info;
  if (x == nullptr) {  // an issued leaf whose DER did not decode: say what is known
    info.subject = info.issuer = "<undecodable certificate>";
    info.serial_hex = cert.SerialHex();
    info.not_before = cert.NotBefore();
    info.not_after = cert.NotAfter();
    info.sha256_fingerprint = cert.Sha256Fingerprint();
    return info;
  }
  info.subject = cert.Subject();
  info.issuer = cert.Issuer();
  info.serial_hex = cert.SerialHex();
  info.not_before = cert.NotBefore();
  info.not_after = cert.NotAfter();
  info.signature_algorithm = OBJ_nid2ln(X509_get_signature_nid(x));
  info.key = DescribeKey(cert.PublicKey());
  info.key_bits = cert.PublicKey() ? KeyBits(cert.PublicKey()) : 0;
  info.uri_sans = SansOfType(x, GEN_URI);
  info.dns_sans = SansOfType(x, GEN_DNS);
  info.ip_sans = SansOfType(x, GEN_IPADD);
  info.email_sans = SansOfType(x, GEN_EMAIL);
  const int san_index = X509_get_ext_by_NID(x, NID_subject_alt_name, -1);
  info.san_critical =
      san_index >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, san_index)) == 1;
  for (const std::string& uri : info.uri_sans) {
    if (ParseSpiffeId(uri).ok()) {
      info.spiffe_id = uri;
      break;
    }
  }
  UniquePtr<BASIC_CONSTRAINTS> bc(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(x, NID_basic_constraints, nullptr, nullptr)));
  if (bc != nullptr) {
    info.basic_constraints_present = true;
    info.is_ca = bc->ca != 0;
    if (bc->pathlen != nullptr) info.path_len = static_cast<int>(ASN1_INTEGER_get(bc->pathlen));
  }
  const int ku_index = X509_get_ext_by_NID(x, NID_key_usage, -1);
  if (ku_index >= 0) {
    info.key_usage_critical = X509_EXTENSION_get_critical(X509_get_ext(x, ku_index)) == 1;
    const uint32_t ku = X509_get_key_usage(x);
    static const std::pair<uint32_t, const char*> kBits[] = {
        {KU_DIGITAL_SIGNATURE, "digitalSignature"},
        {KU_NON_REPUDIATION, "contentCommitment"},
        {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
        {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
        {KU_KEY_AGREEMENT, "keyAgreement"},
        {KU_KEY_CERT_SIGN, "keyCertSign"},
        {KU_CRL_SIGN, "cRLSign"},
        {KU_ENCIPHER_ONLY, "encipherOnly"},
        {KU_DECIPHER_ONLY, "decipherOnly"}};
    for (const auto& [bit, name] : kBits) {
      if (ku & bit) info.key_usage.emplace_back(name);
    }
  }
  UniquePtr<EXTENDED_KEY_USAGE> eku(
      static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(x, NID_ext_key_usage, nullptr, nullptr)));
  if (eku != nullptr) {
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
      const ASN1_OBJECT* obj = sk_ASN1_OBJECT_value(eku.get(), i);
      switch (OBJ_obj2nid(obj)) {
        case NID_server_auth: info.ext_key_usage.emplace_back("serverAuth"); break;
        case NID_client_auth: info.ext_key_usage.emplace_back("clientAuth"); break;
        case NID_code_sign: info.ext_key_usage.emplace_back("codeSigning"); break;
        case NID_email_protect: info.ext_key_usage.emplace_back("emailProtection"); break;
        case NID_time_stamp: info.ext_key_usage.emplace_back("timeStamping"); break;
        case NID_OCSP_sign: info.ext_key_usage.emplace_back("OCSPSigning"); break;
        default: {
          char oid[128];
          OBJ_obj2txt(oid, sizeof oid, obj, 1);
          info.ext_key_usage.emplace_back(oid);
        }
      }
    }
  }
  if (const ASN1_OCTET_STRING* skid = X509_get0_subject_key_id(x)) {
    info.subject_key_id = HexColons(std::string_view(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(skid)), ASN1_STRING_length(skid)));
  }
  if (const ASN1_OCTET_STRING* akid = X509_get0_authority_key_id(x)) {
    info.authority_key_id = HexColons(std::string_view(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(akid)), ASN1_STRING_length(akid)));
  }
  info.sha256_fingerprint = cert.Sha256Fingerprint();
  info.self_signed = cert.IsSelfSigned();
  ClearOsslErrors();
  return info;
}

}  // namespace istioca::pki
