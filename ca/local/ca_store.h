// ca/local/ca_store.h — the self-signed CA persisted in DIR/ca/ (local mode).
#pragma once

#include <string>

#include "ca/core/ca_store.h"

namespace istioca::ca {

// DIR/ca/{ca-cert.pem, ca-key.pem (0600), root-cert.pem, cert-chain.pem}. Create writes the
// files into a fresh directory and renames it into place, so a crash never leaves half a CA and
// two processes racing cannot both win (rename of a directory onto an existing non-empty one
// fails).
//
// The trust lifecycle's record is DIR/ca/record.json (0600): every key with its value and a
// version number, replaced atomically, so a crash leaves the old record or the new one. After it,
// each key is also written as its own file (DIR/ca/ca-cert.pem, next-ca-cert.pem,
// trust-state.json, ...; keys 0600) for operators and tools that read Istio's layout; files of
// keys no longer in the record are removed. Writers (the daemon, `istio-ca rotate`) serialise on
// flock(DIR/ca.lock). Without record.json, LoadRecord reads Istio's four files, version "".
class LocalCaStore final : public CaStore {
 public:
  explicit LocalCaStore(std::string dir) : dir_(std::move(dir)) {}
  Result<StoredCa> Load() const override;
  Status Create(const StoredCa& ca) override;
  Result<StoredRecord> LoadRecord() const override;
  Status StoreRecord(const std::map<std::string, std::string>& data,
                     const std::string& expected_version) override;

 private:
  std::string dir_;
};

}  // namespace istioca::ca
