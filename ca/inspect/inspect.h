// ca/inspect.h — what `istio-ca inspect` concludes about a set of certificate material.
//
// A "material set" is what one workload would use: a chain (leaf first), optionally its
// private key, and optionally the roots it trusts (root-cert.pem). Inspect() turns a set into a
// report at a chosen time; it is pure — no I/O, no clock. Loading sets from files, directories,
// Secrets and TLS endpoints lives in ca/inspect_input.h; rendering below.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/time.h"
#include "ca/core/rotation.h"
#include "pki/cert.h"
#include "pki/key.h"

namespace istioca::ca {

struct MaterialSet {
  std::string source;  // "cert-chain.pem", "/etc/certs", "secret default/istio.sa", "example:443"
  std::string kind;    // "file", "directory", "secret", "connect", "stdin"
  std::vector<pki::Certificate> chain;  // as presented, leaf first
  std::optional<pki::PrivateKey> key;
  std::vector<pki::Certificate> roots;       // the set's own root-cert.pem, if it has one
  std::string roots_name = "root-cert.pem";  // how the set calls its roots, for messages
  std::vector<std::string> notes;  // facts from loading ("server asked for a client cert")
  std::string load_error;  // set when the material could not be read (a fleet row stays visible)
};

struct InspectOptions {
  TimePoint at;
  // --roots: trust these instead of the set's own roots.
  std::optional<std::vector<pki::Certificate>> roots;
  std::string roots_name;  // "--roots FILE" for messages
  Duration expiring_within{0};
  // The daemon's rotation rule (ca/rotation.h), so that "rotation due" is when it will act.
  RotationPolicy rotation;
  // The CA's current trust bundle generation (its record's trust-state.json), when `roots` are
  // the CA's bundle: a set carrying exactly those roots carries this generation.
  std::optional<uint64_t> bundle_generation;
};

struct CertReport {
  std::string role;  // "leaf", "intermediate", "root", "ca"
  pki::CertInfo info;
  Duration time_left{};  // NotAfter - at (negative when expired)
};

struct SetReport {
  std::string source;
  std::string kind;
  TimePoint at;
  std::vector<CertReport> chain;
  std::vector<CertReport> roots;
  std::optional<std::string> spiffe_id;  // of the leaf
  std::optional<TimePoint> expires_at;   // the soonest NotAfter along the chain
  std::optional<TimePoint> rotation_due_at;
  // Chain verification: nullopt when there were no roots to verify against.
  std::optional<bool> chain_verified;
  std::string chain_error;
  std::string roots_source;  // "--roots FILE", "root-cert.pem", "the chain's own root", "none"
  std::vector<std::string> verified_path;  // SHA-256 fingerprints, leaf to anchor
  // With --roots (or the CA's roots in the fleet view): does the set's root-cert.pem equal them?
  std::optional<bool> roots_match;
  // Which trust bundle the set's root-cert.pem is: the CA's current generation (roots match),
  // or what it lacks / carries beyond it (subject key ids).
  std::optional<uint64_t> bundle_generation;
  std::vector<std::string> bundle_missing_roots;
  std::vector<std::string> bundle_extra_roots;
  bool key_present = false;
  std::optional<bool> key_matches;
  std::string key_type;
  bool svid_applies = false;  // the leaf carries a spiffe:// URI
  std::vector<std::string> svid_violations;
  std::vector<std::string> problems;  // each one makes the exit code 1
  std::vector<std::string> warnings;
  std::vector<std::string> notes;

  bool healthy() const { return problems.empty(); }
};

SetReport Inspect(const MaterialSet& set, const InspectOptions& options);

struct RenderOptions {
  bool color = false;
  bool verbose = true;  // print every certificate's details, not just the summary
};
std::string RenderText(const std::vector<SetReport>& reports, const RenderOptions& options);
// The fleet view: one row per set, soonest expiry first (unparsable first of all).
std::string RenderFleet(std::vector<SetReport> reports, const RenderOptions& options);
// Reports in fleet order (the order RenderFleet prints).
void SortByExpiry(std::vector<SetReport>& reports);
// Stable machine schema "istio-ca.inspect/v1", documented in the README.
nlohmann::json RenderJson(const std::vector<SetReport>& reports, TimePoint at);

}  // namespace istioca::ca
