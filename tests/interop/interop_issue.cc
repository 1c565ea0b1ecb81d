// interop_issue DIR — issues certificate material with istio-ca's pki library for the
// independent verifiers in interop_test.sh (openssl, Go crypto/x509, GnuTLS certtool).
//
// For each key type it writes DIR/<type>/:
//   root.pem, intermediate.pem     a self-signed root and an intermediate CA (same key type)
//   leaf.pem, key.pem              a workload leaf issued by the intermediate, and its key (PKCS#8)
//   chain.pem                      leaf + intermediate (what a workload Secret's cert-chain.pem
//   holds) leaf-direct.pem                a workload leaf for the same key issued by the root
//   itself other-root.pem                 an unrelated root that must NOT verify anything here
//   spiffe_id, dns_name, issued_at (Unix seconds), ttl_seconds
// The wall clock is used on purpose: the external tools verify at their own "now".
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "pki/issue.h"
#include "pki/key.h"

using namespace istioca;
using namespace istioca::pki;

namespace {

template <class T>
T OrDie(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "interop_issue: %s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

void Write(const std::string& path, const std::string& data, mode_t mode = 0644) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
    if (!out) {
      std::fprintf(stderr, "interop_issue: writing %s failed\n", path.c_str());
      std::exit(1);
    }
  }
  chmod(path.c_str(), mode);
}

void MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "interop_issue: mkdir %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(1);
  }
}

void Issue(const std::string& dir, KeyType type) {
  const std::string name = KeyTypeName(type);
  const TimePoint now = SystemClock::Get().Now();
  const Duration ttl = std::chrono::hours(24);
  const std::string spiffe = "spiffe://cluster.local/ns/interop/sa/" + name;
  const std::string dns = name + ".interop.svc";

  PrivateKey root_key = OrDie(PrivateKey::Generate(type), "root key");
  Certificate root = OrDie(
      MakeSelfSignedRoot(root_key, {"cluster.local", std::chrono::hours(24 * 3650)}, now), "root");
  PrivateKey int_key = OrDie(PrivateKey::Generate(type), "intermediate key");
  Certificate intermediate =
      OrDie(IssueIntermediate({root, root_key}, int_key.get(),
                              {"cluster.local", std::chrono::hours(24 * 365), 0}, now),
            "intermediate");
  PrivateKey leaf_key = OrDie(PrivateKey::Generate(type), "leaf key");
  const LeafTemplate tmpl{{spiffe}, {dns}, ttl};
  Certificate leaf = OrDie(IssueLeaf({intermediate, int_key}, leaf_key.get(), tmpl, now), "leaf");
  Certificate direct = OrDie(IssueLeaf({root, root_key}, leaf_key.get(), tmpl, now), "direct leaf");
  PrivateKey other_key = OrDie(PrivateKey::Generate(type), "other root key");
  Certificate other =
      OrDie(MakeSelfSignedRoot(other_key, {"cluster.local", std::chrono::hours(24 * 3650)}, now),
            "other root");

  const std::string d = dir + "/" + name;
  MakeDir(d);
  Write(d + "/root.pem", root.ToPem());
  Write(d + "/intermediate.pem", intermediate.ToPem());
  Write(d + "/leaf.pem", leaf.ToPem());
  Write(d + "/leaf-direct.pem", direct.ToPem());
  Write(d + "/chain.pem", leaf.ToPem() + intermediate.ToPem());
  Write(d + "/key.pem", OrDie(leaf_key.ToPem(), "leaf key PEM").str(), 0600);
  Write(d + "/other-root.pem", other.ToPem());
  Write(d + "/spiffe_id", spiffe);
  Write(d + "/dns_name", dns);
  Write(d + "/issued_at",
        std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
  Write(d + "/ttl_seconds",
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(ttl).count()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: interop_issue DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  MakeDir(dir);
  for (KeyType type : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048}) Issue(dir, type);
  return 0;
}
