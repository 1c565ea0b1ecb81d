// pki/verify.h — chain verification at a chosen time, and the X509-SVID rules.
//
// Verification takes the time as a parameter (X509_VERIFY_PARAM_set_time) so that "is this
// valid in 19 hours?" needs no waiting. Any certificate in `roots` is a trust anchor, whether
// self-signed or not (as Go's x509.Verify treats its Roots pool; Istio verified with Go).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "pki/cert.h"

namespace istioca::pki {

// Returns the verified path (leaf first, anchor last), or FailedPrecondition naming the
// reason and the depth ("certificate has expired (depth 0: ...)").
Result<std::vector<Certificate>> VerifyChain(const Certificate& leaf,
                                             const std::vector<Certificate>& intermediates,
                                             const std::vector<Certificate>& roots, TimePoint at);

// Violations of the X509-SVID specification for a leaf SVID (empty when compliant):
// exactly one URI SAN that is a valid SPIFFE ID with a non-empty path, CA:FALSE,
// digitalSignature set, keyCertSign and cRLSign not set.
std::vector<std::string> LeafSvidViolations(const CertInfo& leaf);
// Violations for a signing (CA) certificate: CA:TRUE, keyCertSign set, and any SPIFFE ID it
// carries has no path.
std::vector<std::string> SigningSvidViolations(const CertInfo& ca);

}  // namespace istioca::pki
