// pki/cert.h — X.509 certificates: parse, encode, and read every field an operator asks about.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "pki/ossl.h"

namespace istioca::pki {

struct CertInfo;
class Certificate;

namespace internal {
// What IssueLeaf encoded into a leaf, so that reading it back needs no decoding.
struct IssuedFields {
  std::string serial_hex;  // lowercase, as SerialHex()
  TimePoint not_before;    // whole seconds, as encoded
  TimePoint not_after;
};
// For pki/issue.cc only: a certificate from DER it has just encoded, with those fields and the
// subject key. The caller vouches that `der` is a certificate carrying exactly them.
Certificate MakeIssuedCertificate(std::string der, IssuedFields fields,
                                  UniquePtr<EVP_PKEY>&& public_key);
}  // namespace internal

// An immutable certificate. Copying shares the reference-counted X509 and its encoding.
//
// The DER is encoded once, when the certificate is made: a certificate that cannot be encoded
// is never made (FromDer and Adopt return the error), so ToDer() and ToPem() cannot fail and
// an empty string can never be published as a certificate.
class Certificate {
 public:
  static Result<Certificate> FromDer(std::string_view der);
  // Every CERTIFICATE block of `pem`, in order. Fails if there is none, or if any block is
  // not a certificate (a CSR or key where certificates are expected is named in the error).
  static Result<std::vector<Certificate>> ParsePemChain(std::string_view pem);
  // Fails (kInternal) if OpenSSL cannot encode `cert`.
  static Result<Certificate> Adopt(UniquePtr<X509>&& cert);

  Certificate(const Certificate& other);
  Certificate& operator=(const Certificate& other);
  Certificate(Certificate&&) = default;
  Certificate& operator=(Certificate&&) = default;

  // The X509, always with its public key decoded, so any OpenSSL function may be given it. A
  // leaf issued by IssueLeaf is made from the DER it encoded and has no X509 until one is needed
  // (d2i_X509 decodes the subject key, as costly as the rest of issuing): the first call here,
  // or to an accessor that needs it, decodes the DER once and keeps the X509 (shared by copies).
  // Null only if that decoding fails. ToDer, ToPem, NotBefore, NotAfter, SerialHex, PublicKey,
  // Sha256Fingerprint and == never decode.
  X509* get() const;
  const std::string& ToDer() const;
  // Encoded on the first call and kept.
  std::string ToPem() const;

  TimePoint NotBefore() const;
  TimePoint NotAfter() const;
  Duration Lifetime() const { return NotAfter() - NotBefore(); }
  bool IsCa() const;
  bool IsSelfSigned() const;
  EVP_PKEY* PublicKey() const;
  std::vector<std::string> UriSans() const;
  std::vector<std::string> DnsSans() const;
  // Hex SHA-256 of the DER, colon-separated upper case (as openssl x509 -fingerprint prints).
  std::string Sha256Fingerprint() const;
  // Serial as lowercase hex without separators.
  std::string SerialHex() const;
  std::string Subject() const;
  std::string Issuer() const;

  bool operator==(const Certificate& other) const;

 private:
  struct Issued;
  friend Certificate internal::MakeIssuedCertificate(std::string der, internal::IssuedFields fields,
                                                     UniquePtr<EVP_PKEY>&& public_key);

  struct Encoding;
  Certificate(UniquePtr<X509>&& x509, std::string der);
  Certificate() = default;

  UniquePtr<X509> x509_;  // null for an issued leaf (issued_ then holds what it encoded)
  // The DER, and its PEM once asked for (a bundle's roots and intermediates go out with every
  // certificate); shared by copies, never null but in a moved-from certificate.
  std::shared_ptr<Encoding> der_;
  // Only for a leaf made by IssueLeaf: the fields it encoded, its subject key, and the X509
  // decoded on first use; shared by copies.
  std::shared_ptr<Issued> issued_;
};

// Everything `inspect` shows about one certificate, as plain values.
struct CertInfo {
  std::string subject;  // RFC 2253 one-line form; "" for an empty subject
  std::string issuer;
  std::string serial_hex;
  TimePoint not_before;
  TimePoint not_after;
  std::string signature_algorithm;
  std::string key;  // "EC P-256", "RSA 2048"
  int key_bits = 0;
  std::vector<std::string> uri_sans;
  std::vector<std::string> dns_sans;
  std::vector<std::string> ip_sans;
  std::vector<std::string> email_sans;
  bool san_critical = false;
  std::optional<std::string> spiffe_id;  // the first URI SAN that is a valid SPIFFE ID
  bool basic_constraints_present = false;
  bool is_ca = false;
  int path_len = -1;                   // -1: no limit or not present
  std::vector<std::string> key_usage;  // "digitalSignature", "keyEncipherment", ...
  bool key_usage_critical = false;
  std::vector<std::string> ext_key_usage;  // "serverAuth", "clientAuth", or a dotted OID
  std::string subject_key_id;              // hex with colons, "" if absent
  std::string authority_key_id;
  std::string sha256_fingerprint;
  bool self_signed = false;
};

CertInfo Describe(const Certificate& cert);

// Hex with colons ("AB:CD:...") of a byte string.
std::string HexColons(std::string_view bytes);

}  // namespace istioca::pki
