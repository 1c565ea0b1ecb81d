#include "ca/core/ca_loader.h"

#include <openssl/crypto.h>

#include "base/files.h"
#include "base/log.h"
#include "pki/cert.h"
#include "pki/digest.h"
#include "pki/issue.h"

namespace istioca::ca {
namespace {

Result<std::vector<pki::Certificate>> ParseCerts(const std::string& pem, const std::string& what) {
  auto certs = pki::Certificate::ParsePemChain(pem);
  if (!certs.ok()) return certs.status().WithContext(what);
  return certs;
}

Result<std::shared_ptr<const CaBundle>> MakeBundle(const std::string& cert_pem,
                                                   const std::string& key_pem,
                                                   const std::string& roots_pem,
                                                   const std::string& chain_pem,
                                                   const std::string& names, TimePoint now) {
  ASSIGN_OR_RETURN(auto certs, ParseCerts(cert_pem, "signing certificate"));
  auto key = pki::PrivateKey::FromPem(key_pem);
  if (!key.ok()) return key.status().WithContext("signing key");
  pki::Signer signer{certs.front(), std::move(key).value()};
  ASSIGN_OR_RETURN(std::vector<pki::Certificate> roots, ParseCerts(roots_pem, "root certificate"));
  std::vector<pki::Certificate> intermediates;
  if (chain_pem.find("-----BEGIN") != std::string::npos) {
    ASSIGN_OR_RETURN(auto chain, ParseCerts(chain_pem, "certificate chain"));
    // Istio's cacerts convention puts the signing cert itself first in cert-chain.pem when it is
    // directly under the root; it is not an intermediate of itself. Roots are not either.
    for (pki::Certificate& c : chain) {
      bool is_root = false;
      for (const pki::Certificate& r : roots) is_root |= r == c;
      if (!(c == signer.cert) && !is_root) intermediates.push_back(std::move(c));
    }
  }
  auto bundle = std::make_shared<CaBundle>(
      CaBundle{std::move(signer), std::move(intermediates), std::move(roots)});
  Status s = bundle->Validate(now);
  if (!s.ok()) return s.WithContext("invalid CA bundle (" + names + ")");
  return std::shared_ptr<const CaBundle>(std::move(bundle));
}

}  // namespace

Result<std::shared_ptr<const CaBundle>> BundleFromStored(const StoredCa& s, TimePoint now) {
  return MakeBundle(s.ca_cert_pem, s.ca_key_pem,
                    s.root_cert_pem.empty() ? s.ca_cert_pem : s.root_cert_pem, s.cert_chain_pem,
                    "stored CA", now);
}

Result<std::shared_ptr<const CaBundle>> LoadOrCreateSelfSigned(CaStore& store,
                                                               const SelfSignedOptions& options,
                                                               TimePoint now) {
  auto log = Logger("ca");
  auto stored = store.Load();
  if (stored.ok()) {
    ASSIGN_OR_RETURN(auto bundle, BundleFromStored(*stored, now));
    log->info("loaded the stored self-signed CA serial={} not_after={}",
              bundle->signer.cert.SerialHex(), FormatRfc3339(bundle->signer.cert.NotAfter()));
    return bundle;
  }
  if (stored.status().code() != Code::kNotFound) {
    return stored.status().WithContext("loading the stored CA");
  }
  ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::Generate(options.key_type));
  ASSIGN_OR_RETURN(pki::Certificate root,
                   pki::MakeSelfSignedRoot(key, {options.organization, options.ttl}, now));
  ASSIGN_OR_RETURN(SecretString key_pem, key.ToPem());
  StoredCa fresh{root.ToPem(), key_pem.str(), root.ToPem(), ""};
  Status s = store.Create(fresh);
  if (s.code() == Code::kAlreadyExists) {
    // Another replica won the race: use its CA so that both serve the same root.
    log->info("another instance stored a CA first; using it");
    ASSIGN_OR_RETURN(StoredCa theirs, store.Load());
    return BundleFromStored(theirs, now);
  }
  if (!s.ok()) return s.WithContext("storing the new self-signed CA");
  log->info("created a self-signed CA org={} key={} serial={} not_after={}", options.organization,
            pki::KeyTypeName(options.key_type), root.SerialHex(), FormatRfc3339(root.NotAfter()));
  return BundleFromStored(fresh, now);
}

Result<std::shared_ptr<const CaBundle>> LoadPluggedCa(const PluggedCaFiles& f, TimePoint now) {
  auto read = [](const std::string& path, const char* flag) -> Result<std::string> {
    auto r = ReadFileToString(path);
    if (!r.ok()) return r.status().WithContext(std::string(flag) + " " + path);
    return r;
  };
  ASSIGN_OR_RETURN(std::string cert, read(f.signing_cert, "--signing-cert"));
  ASSIGN_OR_RETURN(std::string key, read(f.signing_key, "--signing-key"));
  // The key PEM is parsed into the bundle's key below; this copy is wiped on every return.
  struct Wipe {
    std::string& s;
    ~Wipe() { OPENSSL_cleanse(s.data(), s.size()); }
  } wipe_key{key};
  ASSIGN_OR_RETURN(std::string roots, read(f.root_cert, "--root-cert"));
  std::string chain;
  if (!f.cert_chain.empty()) {
    ASSIGN_OR_RETURN(chain, read(f.cert_chain, "--cert-chain"));
  }
  return MakeBundle(cert, key, roots, chain,
                    "--signing-cert " + f.signing_cert + " --root-cert " + f.root_cert, now);
}

std::string PluggedFilesFingerprint(const PluggedCaFiles& f) {
  std::string out;
  for (const std::string* p : {&f.signing_cert, &f.signing_key, &f.root_cert, &f.cert_chain}) {
    if (p->empty()) continue;
    auto r = pki::Sha256HexOfFile(*p);
    out += r.ok() ? *r : "<unreadable:" + r.status().message() + ">";
    out += ' ';
  }
  return out;
}

}  // namespace istioca::ca
