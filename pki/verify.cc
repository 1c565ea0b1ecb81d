#include "pki/verify.h"

#include <algorithm>
#include <ctime>

#include "pki/spiffe.h"

namespace istioca::pki {
namespace {

bool Has(const std::vector<std::string>& v, const char* s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

Result<std::vector<Certificate>> VerifyChain(const Certificate& leaf,
                                             const std::vector<Certificate>& intermediates,
                                             const std::vector<Certificate>& roots, TimePoint at) {
  if (roots.empty()) return FailedPrecondition("no trusted roots to verify against");
  UniquePtr<X509_STORE> store(X509_STORE_new());
  X509Stack untrusted(sk_X509_new_null());
  UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (store == nullptr || untrusted == nullptr || ctx == nullptr) {
    return OsslError(Code::kInternal, "allocating the verifier failed");
  }
  for (const Certificate& root : roots) {
    // Adding the same root twice is not an error in OpenSSL 3 (it returns 1).
    if (root.get() == nullptr || X509_STORE_add_cert(store.get(), root.get()) != 1) {
      return OsslError(Code::kInternal, "adding a trusted root failed");
    }
  }
  for (const Certificate& c : intermediates) {
    X509* x = c.get();
    if (x == nullptr || X509_up_ref(x) != 1) {
      return OsslError(Code::kInternal, "adding an intermediate failed");
    }
    if (sk_X509_push(untrusted.get(), x) <= 0) {
      X509_free(x);
      return OsslError(Code::kInternal, "adding an intermediate failed");
    }
  }
  X509* target = leaf.get();
  if (target == nullptr) return Internal("the certificate to verify could not be decoded");
  if (X509_STORE_CTX_init(ctx.get(), store.get(), target, untrusted.get()) != 1) {
    return OsslError(Code::kInternal, "initialising verification failed");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<std::time_t>(UnixSeconds(at)));
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  const int ok = X509_verify_cert(ctx.get());
  ClearOsslErrors();
  if (ok != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    std::string who;
    if (X509* bad = X509_STORE_CTX_get_current_cert(ctx.get()); bad && X509_up_ref(bad) == 1) {
      auto adopted = Certificate::Adopt(UniquePtr<X509>(bad));
      const std::string subject = adopted.ok() ? adopted->Subject() : "";
      who = subject.empty() ? "" : ": " + subject;
    }
    return FailedPrecondition(std::string(X509_verify_cert_error_string(err)) + " (depth " +
                              std::to_string(depth) + who + ")");
  }
  std::vector<Certificate> path;
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* c = sk_X509_value(chain, i);
    if (c == nullptr || X509_up_ref(c) != 1)
      return OsslError(Code::kInternal, "reading the path failed");
    ASSIGN_OR_RETURN(Certificate cert, Certificate::Adopt(UniquePtr<X509>(c)));
    path.push_back(std::move(cert));
  }
  return path;
}

std::vector<std::string> LeafSvidViolations(const CertInfo& leaf) {
  std::vector<std::string> out;
  if (leaf.uri_sans.size() != 1) {
    out.push_back("an X509-SVID must have exactly one URI SAN, found " +
                  std::to_string(leaf.uri_sans.size()));
  }
  for (const std::string& uri : leaf.uri_sans) {
    auto id = ParseSpiffeId(uri);
    if (!id.ok()) {
      out.push_back("URI SAN \"" + uri + "\" is not a valid SPIFFE ID: " + id.status().message());
    } else if (id->path.empty()) {
      out.push_back("a leaf SVID's SPIFFE ID must have a path");
    }
  }
  if (leaf.is_ca) out.push_back("a leaf SVID must not be a CA (basicConstraints CA:TRUE)");
  if (!leaf.key_usage.empty() || leaf.key_usage_critical) {
    if (!Has(leaf.key_usage, "digitalSignature")) out.push_back("keyUsage lacks digitalSignature");
    if (Has(leaf.key_usage, "keyCertSign")) out.push_back("a leaf SVID must not have keyCertSign");
    if (Has(leaf.key_usage, "cRLSign")) out.push_back("a leaf SVID must not have cRLSign");
  } else {
    out.push_back("keyUsage extension is missing (digitalSignature is required)");
  }
  return out;
}

std::vector<std::string> SigningSvidViolations(const CertInfo& ca) {
  std::vector<std::string> out;
  if (!ca.is_ca) out.push_back("a signing certificate must have basicConstraints CA:TRUE");
  if (!Has(ca.key_usage, "keyCertSign"))
    out.push_back("a signing certificate must have keyCertSign");
  for (const std::string& uri : ca.uri_sans) {
    auto id = ParseSpiffeId(uri);
    if (id.ok() && !id->path.empty()) {
      out.push_back("a signing certificate's SPIFFE ID must not have a path");
    }
  }
  return out;
}

}  // namespace istioca::pki
