// ca/ca_loader.h — where the CA bundle comes from: self-signed (created once, persisted through
// a CaStore, reused after restarts) or plugged-in files (validated, watched, reloaded).
//
// Every bundle is checked with CaBundle::Validate before it is used; errors name the problem
// and the file. Watching the plugged-in files for changes, and what a change does, is the trust
// lifecycle's job (ca/trust/manager.h), which uses LoadPluggedCa and PluggedFilesFingerprint.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "base/time.h"
#include "ca/core/authority.h"
#include "ca/core/ca_store.h"
#include "pki/key.h"

namespace istioca::ca {

struct SelfSignedOptions {
  std::string organization;
  Duration ttl = std::chrono::hours(87600);
  pki::KeyType key_type = pki::KeyType::kEcP256;
};

// Parses a stored CA (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) and validates it.
Result<std::shared_ptr<const CaBundle>> BundleFromStored(const StoredCa& stored, TimePoint now);

// Loads the CA from `store`, or makes a self-signed root and stores it. If another replica
// stored one first (AlreadyExists), that one is loaded and used. A stored CA that fails
// validation (e.g. expired) is an error: it is never silently replaced.
Result<std::shared_ptr<const CaBundle>> LoadOrCreateSelfSigned(CaStore& store,
                                                               const SelfSignedOptions& options,
                                                               TimePoint now);

struct PluggedCaFiles {
  std::string signing_cert;
  std::string signing_key;
  std::string root_cert;   // may hold several roots; all trusted and published
  std::string cert_chain;  // optional: intermediates between the signing cert and the root
};
Result<std::shared_ptr<const CaBundle>> LoadPluggedCa(const PluggedCaFiles& files, TimePoint now);
// SHA-256 per file (or why it could not be read): identifies the files' content without keeping
// it (the signing key's bytes never stay in memory for change detection).
std::string PluggedFilesFingerprint(const PluggedCaFiles& files);

}  // namespace istioca::ca
