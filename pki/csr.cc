#include "pki/csr.h"

#include "pki/general_names.h"
#include "pki/pem.h"

namespace istioca::pki {
namespace {

using ExtStack = std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)>;

void FreeExtStack(STACK_OF(X509_EXTENSION) * s) { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }

}  // namespace

Result<Csr> Csr::Build(const PrivateKey& key, const CsrOptions& options) {
  UniquePtr<X509_REQ> req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  if (!options.organization.empty()) {
    X509_NAME* name = X509_REQ_get_subject_name(req.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(options.organization.c_str()),
                               -1, -1, 0);
  }
  X509_REQ_set_pubkey(req.get(), key.get());
  if (!options.uris.empty() || !options.dns_names.empty()) {
    UniquePtr<GENERAL_NAMES> sans = MakeGeneralNames(options.uris, options.dns_names);
    ExtStack exts(sk_X509_EXTENSION_new_null(), FreeExtStack);
    // Critical when the subject is empty (RFC 5280 4.2.1.6), as Istio does since 1.2.
    X509_EXTENSION* ext =
        X509V3_EXT_i2d(NID_subject_alt_name, options.organization.empty() ? 1 : 0, sans.get());
    sk_X509_EXTENSION_push(exts.get(), ext);
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
      return OsslError(Code::kInternal, "adding SAN extension to CSR failed");
    }
  }
  if (X509_REQ_sign(req.get(), key.get(), DigestFor(key.get())) <= 0) {
    return OsslError(Code::kInternal, "signing CSR failed");
  }
  return Csr(std::move(req));
}

Result<Csr> Csr::FromDer(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  UniquePtr<X509_REQ> req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (req == nullptr) return OsslError(Code::kInvalidArgument, "not a valid PKCS#10 CSR");
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return InvalidArgument("trailing data after the CSR");
  }
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (pub == nullptr) return OsslError(Code::kInvalidArgument, "CSR public key cannot be decoded");
  if (X509_REQ_verify(req.get(), pub) != 1) {
    return OsslError(Code::kInvalidArgument,
                     "CSR signature does not verify (no proof of possession of the key)");
  }
  return Csr(std::move(req));
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

std::string Csr::ToPem() const {
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(req_.get(), &der);
  if (len <= 0) return "";
  std::string out = EncodePem("CERTIFICATE REQUEST", std::string_view(reinterpret_cast<char*>(der), len));
  OPENSSL_free(der);
  return out;
}

EVP_PKEY* Csr::PublicKey() const { return X509_REQ_get0_pubkey(req_.get()); }

namespace {
std::vector<std::string> CsrSans(X509_REQ* req, int type) {
  std::vector<std::string> out;
  ExtStack exts(X509_REQ_get_extensions(req), FreeExtStack);
  if (exts == nullptr) {
    ClearOsslErrors();
    return out;
  }
  UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != type) continue;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.ia5)),
                     static_cast<size_t>(ASN1_STRING_length(gn->d.ia5)));
  }
  return out;
}
}  // namespace

std::vector<std::string> Csr::UriSans() const { return CsrSans(req_.get(), GEN_URI); }
std::vector<std::string> Csr::DnsSans() const { return CsrSans(req_.get(), GEN_DNS); }

bool Csr::RequestsCa() const {
  ExtStack exts(X509_REQ_get_extensions(req_.get()), FreeExtStack);
  if (exts == nullptr) {
    ClearOsslErrors();
    return false;
  }
  UniquePtr<BASIC_CONSTRAINTS> bc(static_cast<BASIC_CONSTRAINTS*>(
      X509V3_get_d2i(exts.get(), NID_basic_constraints, nullptr, nullptr)));
  return bc != nullptr && bc->ca != 0;
}

}  // namespace istioca::pki
