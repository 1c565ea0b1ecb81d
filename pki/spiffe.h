// pki/spiffe.h — SPIFFE IDs under the SPIFFE ID specification's rules.
//
// spiffe://<trust-domain><path>: scheme exactly "spiffe"; trust domain of [a-z0-9.-_] only
// (lowercase, no port, no userinfo), at most 255 bytes; path empty or "/seg/seg" where each
// segment is non-empty, not "." or "..", of [A-Za-z0-9.-_]; no query or fragment; the whole
// ID at most 2048 bytes. Istio workload identities are spiffe://<td>/ns/<ns>/sa/<sa>.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace istioca::pki {

struct SpiffeId {
  std::string trust_domain;
  std::string path;  // "" or starting with '/'

  std::string ToString() const { return "spiffe://" + trust_domain + path; }
  bool operator==(const SpiffeId& o) const {
    return trust_domain == o.trust_domain && path == o.path;
  }
};

Result<SpiffeId> ParseSpiffeId(std::string_view uri);
Status ValidateTrustDomain(std::string_view trust_domain);
Status ValidatePathSegment(std::string_view segment);

// Istio's identity for a service account; fails if a name is not a valid path segment.
Result<SpiffeId> WorkloadId(std::string_view trust_domain, std::string_view ns,
                            std::string_view sa);

struct ServiceAccountRef {
  std::string ns;
  std::string sa;
};
// The namespace and service account of an Istio-shaped ID (/ns/<ns>/sa/<sa>), if it is one.
std::optional<ServiceAccountRef> IstioServiceAccount(const SpiffeId& id);

}  // namespace istioca::pki
