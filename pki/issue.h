// pki/issue.h — making certificates.
//
// IssueLeaf builds a workload certificate from a public key and a template decided by the
// caller's policy: the SAN comes from the template, never from a CSR, and no CSR extension is
// copied (Istio 0.6–1.0 copied them all, so a CSR could ask for CA:TRUE). Serial: 128 random
// bits; NotBefore: now − 2 min (clock skew, Istio PR #32176); NotAfter: now + ttl clamped to the
// signer's NotAfter (Istio #18990). A signer that is expired or not yet valid signs nothing.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/key.h"

namespace istioca::pki {

inline constexpr Duration kClockSkewBackdate = std::chrono::minutes(2);

// A CA certificate with its key: what signs.
struct Signer {
  Certificate cert;
  PrivateKey key;
};

struct LeafTemplate {
  std::vector<std::string> uris;
  std::vector<std::string> dns_names;
  Duration ttl{};
};

Result<Certificate> IssueLeaf(const Signer& signer, EVP_PKEY* subject_key, const LeafTemplate& tmpl,
                              TimePoint now);
// The same for the key of a parsed CSR, whose SubjectPublicKeyInfo is copied into the leaf as
// received when it is the canonical DER of an uncompressed EC point (encoding it from the key
// makes OpenSSL 3.0 convert the point to affine coordinates: 4% of the CreateCertificate work).
Result<Certificate> IssueLeaf(const Signer& signer, const Csr& csr, const LeafTemplate& tmpl,
                              TimePoint now);

struct CaTemplate {
  std::string organization;
  Duration ttl{};
  int path_len = -1;  // -1: no pathLenConstraint
};

// Self-signed root: O=<org>, KU keyCertSign+cRLSign (critical), CA:TRUE (critical), SKID.
// NotBefore is backdated like a leaf so a freshly made root verifies on a skewed node.
Result<Certificate> MakeSelfSignedRoot(const PrivateKey& key, const CaTemplate& tmpl,
                                       TimePoint now);
// An intermediate CA signed by `parent` (plugged-in CA hierarchies, tests).
Result<Certificate> IssueIntermediate(const Signer& parent, EVP_PKEY* subject_key,
                                      const CaTemplate& tmpl, TimePoint now);

}  // namespace istioca::pki
