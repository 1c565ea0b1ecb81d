// ca/local/ca_store.h — the self-signed CA persisted in DIR/ca/ (local mode).
#pragma once

#include <string>

#include "ca/core/ca_store.h"

namespace istioca::ca {

// DIR/ca/{ca-cert.pem, ca-key.pem (0600), root-cert.pem, cert-chain.pem}. Create writes the
// files into a fresh directory and renames it into place, so a crash never leaves half a CA and
// two processes racing cannot both win (rename of a directory onto an existing non-empty one
// fails).
class LocalCaStore final : public CaStore {
 public:
  explicit LocalCaStore(std::string dir) : dir_(std::move(dir)) {}
  Result<StoredCa> Load() const override;
  Status Create(const StoredCa& ca) override;

 private:
  std::string dir_;
};

}  // namespace istioca::ca
