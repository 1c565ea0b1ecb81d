// ca/inspect_input.h — loading material sets for `inspect` from files, directories, stdin,
// Kubernetes Secrets (kubectl -o json / -o yaml, or a List of them) and TLS endpoints.
//
// Every failure is a Status whose message names the input and the problem in one line, so the
// command can print it and exit 2. Inputs are capped in size before they are parsed.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "ca/inspect/inspect.h"

namespace istioca::ca {

inline constexpr size_t kMaxInspectInput = 4 * 1024 * 1024;

// Reads a file, or standard input for "-", refusing more than `max_bytes`.
Result<std::string> ReadInput(const std::string& path, size_t max_bytes = kMaxInspectInput);

// PEM (certificates and at most one key), or a Secret / List of Secrets as JSON or YAML.
// `role_hint` "roots" puts PEM certificates into the roots (a root-cert.pem given as a file).
Result<std::vector<MaterialSet>> ParseMaterial(std::string_view bytes, const std::string& source,
                                               const std::string& kind);

// An /etc/certs-layout directory: cert-chain.pem (or ca-cert.pem), key.pem (or ca-key.pem),
// root-cert.pem. Only the certificate file is required.
Result<MaterialSet> LoadDirectory(const std::string& dir);

// Each file given on the command line that holds certificates is its own set (its chain, in
// order); a file named root-cert.pem or ca.crt supplies the roots of every such set, and a file
// holding only a private key joins the set whose leaf it matches (or the only set).
// Directories and "-" are their own sets.
Result<std::vector<MaterialSet>> LoadInputs(const std::vector<std::string>& inputs);

// A Secret's decoded data (cert-chain.pem / key.pem / root-cert.pem, the CA secret's
// ca-cert.pem / ca-key.pem, or kubernetes.io/tls names) as a set named "secret NS/NAME".
Result<MaterialSet> MaterialFromSecret(const std::string& ns, const std::string& name,
                                       const std::string& type,
                                       const std::map<std::string, std::string>& data);

// Every certificate in a roots file (--roots).
Result<std::vector<pki::Certificate>> LoadRoots(const std::string& path);

}  // namespace istioca::ca
