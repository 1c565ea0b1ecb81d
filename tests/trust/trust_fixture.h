// tests/trust/trust_fixture.h — roots, signers and states built from real certificates.
#pragma once

#include <string>

#include "ca/trust/lifecycle.h"
#include "ca/trust/state.h"
#include "pki/issue.h"
#include "tests/testing/test_ca.h"

namespace istioca::ca::trust::testing {

using istioca::testing::Must;
using istioca::testing::T0;
using namespace std::chrono_literals;

// A self-signed root (and signer) made at `now`.
struct Root {
  pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate cert;
  Root(const std::string& org, Duration ttl, TimePoint now)
      : cert(Must(pki::MakeSelfSignedRoot(key, {org, ttl}, now))) {}
  pki::Signer signer() const { return {cert, key}; }
  SignerPem pem() const { return {cert.ToPem(), Must(key.ToPem()).str(), ""}; }
};

// An intermediate signer under `root`.
struct Intermediate {
  pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate cert;
  Intermediate(const Root& root, const std::string& org, Duration ttl, TimePoint now)
      : cert(Must(pki::IssueIntermediate(root.signer(), key.get(), {org, ttl}, now))) {}
  pki::Signer signer() const { return {cert, key}; }
  SignerPem pem() const { return {cert.ToPem(), Must(key.ToPem()).str(), ""}; }
};

// A stable state whose active signer is `signer` and whose bundle is `root`.
inline TrustState StableState(const std::string& root_pem, const SignerPem& signer,
                              TimePoint signer_not_after, TimePoint now) {
  TrustState s;
  s.roots.push_back({root_pem, std::nullopt, false});
  s.active = signer;
  s.active_signer_not_after = signer_not_after;
  s.stage_entered_at = now;
  return s;
}

// Every object carries the state's generation, the last written at `at`.
inline Publication AllPublished(const TrustState& s, size_t total, TimePoint at) {
  return {s.bundle_generation, total, total, at};
}

}  // namespace istioca::ca::trust::testing
