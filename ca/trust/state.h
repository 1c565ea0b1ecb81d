// ca/trust/state.h — what the trust lifecycle remembers, and its persisted form.
//
// Promises: a TrustState holds everything the decisions in lifecycle.h need that is not
// re-derivable from the world: the stage (stable → prepared → active → stable), the roots of the
// trust bundle with the instant each may leave it, the active / next / previous signer (PEM), and
// the recorded instants (latest NotAfter handed out with a bundle lacking the new root, latest
// NotAfter issued under the old signer, the last distribution write, ...). It serialises to a flat
// string map usable both as the `istio-ca-secret` data (Istio's `ca-cert.pem` / `ca-key.pem` stay
// the active signer) and as files in local `DIR/ca/`. Parsing is strict: a malformed or
// inconsistent map is an error naming the key, never a silent reset to a fresh CA (a reset would
// switch the signer without staging and break every handshake with the old root).
//
// Does not promise: any I/O (callers read and write the map), or that the PEM keys are usable for
// signing beyond parsing (the CA loader validates signers).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/time.h"

namespace istioca::ca::trust {

enum class Stage { kStable, kPrepared, kActive };
const char* StageName(Stage stage);  // "stable", "prepared", "active" (rotate --json values)
std::optional<Stage> ParseStage(std::string_view name);

// A signer as stored: certificate, its private key, and the intermediates up to (not including)
// the root. Empty `chain_pem` when the signer is the root itself.
struct SignerPem {
  std::string cert_pem;
  std::string key_pem;
  std::string chain_pem;
  bool operator==(const SignerPem&) const = default;
};

// One root of the trust bundle. `retire_after` set: the root leaves the bundle once `now` passes
// it (rule 3: the latest NotAfter issued under it). Unset: it stays.
struct RootEntry {
  std::string cert_pem;
  std::optional<TimePoint> retire_after;
  // Leaves the bundle after the rotation in progress: at activation its `retire_after` becomes the
  // previous signer's last NotAfter.
  bool leaving = false;
  bool operator==(const RootEntry&) const = default;
};

struct TrustState {
  Stage stage = Stage::kStable;
  // Bumped on every change of the bundle's root set; distribution reports how many objects carry
  // this generation.
  uint64_t bundle_generation = 1;
  std::vector<RootEntry> roots;
  SignerPem active;
  std::optional<SignerPem> next;      // prepared: staged, its root already in `roots`
  std::optional<SignerPem> previous;  // active: the old signer, kept until retirement
  std::string next_root_pem;          // prepared: the root `next` chains to

  // A bound on every NotAfter the CA has handed out: recorded before issuance (write-ahead,
  // ca/trust/manager.h), so it may run ahead of the truth but never behind it.
  std::optional<TimePoint> latest_issued_not_after;
  // NotAfter of the active signer's own certificate (the unsafe path compares against it).
  std::optional<TimePoint> active_signer_not_after;
  // Rule 2: the latest NotAfter handed out with a bundle that lacked the next root (recorded at
  // prepare).
  std::optional<TimePoint> without_next_root_until;
  // Rule 3: the latest NotAfter issued under the previous signer (recorded at activation).
  std::optional<TimePoint> previous_signer_until;
  // The last distribution write of `published_generation` once every object carried it.
  uint64_t published_generation = 0;
  std::optional<TimePoint> published_at;
  // When the current stage was entered, and whether the activation was the forced, unsafe one.
  std::optional<TimePoint> stage_entered_at;
  bool forced_activation = false;

  bool operator==(const TrustState&) const = default;
};

// Keys of the persisted map. The first two are Istio's `istio-ca-secret` keys.
inline constexpr char kCaCertKey[] = "ca-cert.pem";
inline constexpr char kCaKeyKey[] = "ca-key.pem";
inline constexpr char kCaChainKey[] = "ca-chain.pem";
inline constexpr char kNextCertKey[] = "next-ca-cert.pem";
inline constexpr char kNextKeyKey[] = "next-ca-key.pem";
inline constexpr char kNextChainKey[] = "next-ca-chain.pem";
inline constexpr char kPreviousCertKey[] = "previous-ca-cert.pem";
inline constexpr char kPreviousKeyKey[] = "previous-ca-key.pem";
inline constexpr char kPreviousChainKey[] = "previous-ca-chain.pem";
inline constexpr char kStateKey[] = "trust-state.json";
inline constexpr int kStateFormatVersion = 1;

using StateMap = std::map<std::string, std::string>;

// The map for `state`. Absent signers and empty chains produce no key.
StateMap SerializeTrustState(const TrustState& state);

// Parses a map written by SerializeTrustState. NotFound when `trust-state.json` is absent (a CA
// stored before the trust lifecycle existed: the caller builds a stable state from `ca-cert.pem`);
// InvalidArgument naming the key for anything malformed or inconsistent (unknown version or
// stage, bad JSON, a certificate or key that does not parse, a prepared state without a next
// signer, ...).
Result<TrustState> ParseTrustState(const StateMap& data);

}  // namespace istioca::ca::trust
