// tests/testing/test_ca.h — a small CA hierarchy for tests, built in memory at a fixed time.
#pragma once

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "pki/issue.h"

namespace istioca::testing {

using namespace std::chrono_literals;

// 2026-01-01T00:00:00Z: a fixed "now" so that tests never depend on the wall clock.
inline TimePoint T0() { return FromUnixSeconds(1767225600); }

template <class T>
T Must(Result<T> r) {
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

// Output of a shell command that must succeed (the openssl CLI as an independent peer).
inline std::string RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  REQUIRE(pclose(p) == 0);
  return out;
}

struct TestCa {
  pki::PrivateKey root_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate root = Must(
      pki::MakeSelfSignedRoot(root_key, {"cluster.local", std::chrono::hours(24 * 365)}, T0()));
  pki::Signer signer{root, root_key};

  pki::Certificate Leaf(const std::string& uri, const pki::PrivateKey& key,
                        Duration ttl = std::chrono::hours(24), TimePoint now = T0()) const {
    return Must(pki::IssueLeaf(signer, key.get(), {{uri}, {}, ttl}, now));
  }
};

}  // namespace istioca::testing
