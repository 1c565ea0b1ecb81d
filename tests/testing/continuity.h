// tests/testing/continuity.h — the trust-continuity checker (issue 10's proof).
//
// A ContinuityChecker reads every credential set a mesh consumer would hold (a workload secret,
// a node agent's files) every ~100 ms and checks each set's leaf chain against every set's
// root-cert.pem, in both directions, as an mTLS handshake between them would; it also runs real
// TLS 1.3 handshakes (OpenSSL, mutual authentication, in memory) between pairs of sets. Every
// failure is counted with its reason. A rotation is continuous when it ends with zero failures.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/time.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "pki/verify.h"

namespace istioca::testing {

// One consumer's credentials, as read at one instant. A set with only `roots_pem` (an
// istio-ca-root-cert ConfigMap: what istio-agent verifies peers with) is checked as a verifier.
struct CredentialSet {
  std::string name;
  std::string chain_pem;  // cert-chain.pem: leaf + intermediates
  std::string key_pem;    // key.pem
  std::string roots_pem;  // root-cert.pem
};

inline std::string ReadWhole(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A directory in the kubelet's atomic-writer layout (files behind `..data`) or plain files.
// The files are read from one generation, as a kubelet-mounted volume shows them.
inline std::optional<CredentialSet> ReadCredentialDir(const std::string& name,
                                                      const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::path base = dir;
  const auto data = std::filesystem::read_symlink(dir / "..data", ec);
  if (!ec) base = dir / data;
  CredentialSet s{name, ReadWhole(base / "cert-chain.pem"), ReadWhole(base / "key.pem"),
                  ReadWhole(base / "root-cert.pem")};
  if (s.chain_pem.empty() || s.key_pem.empty() || s.roots_pem.empty()) return std::nullopt;
  return s;
}

namespace continuity_detail {

struct Parsed {
  std::string name;
  bool roots_only = false;
  std::vector<pki::Certificate> chain;
  std::vector<pki::Certificate> roots;
  std::optional<pki::PrivateKey> key;
};

inline std::optional<Parsed> Parse(const CredentialSet& s, std::string& why) {
  if (s.chain_pem.empty()) {
    auto roots = pki::Certificate::ParsePemChain(s.roots_pem);
    if (!roots.ok()) {
      why = s.name + ": unparsable root-cert.pem";
      return std::nullopt;
    }
    return Parsed{s.name, true, {}, std::move(roots).value(), std::nullopt};
  }
  auto chain = pki::Certificate::ParsePemChain(s.chain_pem);
  auto roots = pki::Certificate::ParsePemChain(s.roots_pem);
  if (!chain.ok() || !roots.ok()) {
    why = s.name + ": unparsable cert-chain.pem or root-cert.pem";
    return std::nullopt;
  }
  Parsed p{s.name, false, std::move(chain).value(), std::move(roots).value(), std::nullopt};
  auto key = pki::PrivateKey::FromPem(s.key_pem);
  if (key.ok()) p.key = std::move(key).value();
  return p;
}

// Adds `p`'s leaf, chain and key to `ssl`, and trusts `p`'s roots.
inline bool Configure(SSL_CTX* ctx, const Parsed& p) {
  if (!p.key || SSL_CTX_use_certificate(ctx, p.chain[0].get()) != 1) return false;
  for (size_t i = 1; i < p.chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, p.chain[i].get()) != 1) return false;
  }
  if (SSL_CTX_use_PrivateKey(ctx, p.key->get()) != 1) return false;
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const pki::Certificate& r : p.roots) X509_STORE_add_cert(store, r.get());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return true;
}

// A mutual-TLS handshake in memory: `server` presents its chain and trusts its roots; so does
// `client`. Empty on success, else why it failed.
inline std::string Handshake(const Parsed& server, const Parsed& client) {
  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  std::string err;
  SSL* s = nullptr;
  SSL* c = nullptr;
  if (!Configure(sctx, server) || !Configure(cctx, client)) {
    err = "cannot load the credentials into OpenSSL";
  } else {
    s = SSL_new(sctx);
    c = SSL_new(cctx);
    BIO* sb = nullptr;
    BIO* cb = nullptr;
    BIO_new_bio_pair(&sb, 0, &cb, 0);
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    bool done_s = false, done_c = false;
    for (int i = 0; i < 50 && !(done_s && done_c) && err.empty(); ++i) {
      for (auto [ssl, done, who] : {std::tuple{c, &done_c, "client"}, {s, &done_s, "server"}}) {
        if (*done) continue;
        const int rc = SSL_do_handshake(ssl);
        if (rc == 1) {
          *done = true;
          continue;
        }
        const int e = SSL_get_error(ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) continue;
        const long v = SSL_get_verify_result(ssl);
        err = std::string(who) + " handshake failed: " +
              (v != X509_V_OK ? X509_verify_cert_error_string(v) : "TLS error");
        break;
      }
    }
    if (err.empty() && !(done_s && done_c)) err = "handshake did not finish";
    // TLS 1.3: the server verifies the client certificate after its own handshake completes;
    // a rejection reaches the client on its next read.
    if (err.empty()) {
      char byte = 'x';
      SSL_write(c, &byte, 1);
      char got = 0;
      if (SSL_read(s, &got, 1) != 1) {
        const long v = SSL_get_verify_result(s);
        err = std::string("server rejected the client: ") +
              (v != X509_V_OK ? X509_verify_cert_error_string(v) : "TLS error");
      }
    }
  }
  ERR_clear_error();
  if (s) SSL_free(s);
  if (c) SSL_free(c);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
  return err;
}

}  // namespace continuity_detail

class ContinuityChecker {
 public:
  using Loader = std::function<std::vector<CredentialSet>()>;
  explicit ContinuityChecker(Loader load,
                             std::chrono::milliseconds period = std::chrono::milliseconds(100))
      : load_(std::move(load)), period_(period) {}
  ~ContinuityChecker() { Stop(); }

  void Start() {
    thread_ = std::thread([this] {
      while (!stop_) {
        CheckOnce();
        std::this_thread::sleep_for(period_);
      }
    });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // One round: every leaf against every set's roots (both directions of every pair), and a
  // handshake between consecutive sets.
  void CheckOnce() {
    const TimePoint now = SystemClock::Get().Now();
    std::vector<continuity_detail::Parsed> sets;
    for (const CredentialSet& s : load_()) {
      std::string why;
      auto p = continuity_detail::Parse(s, why);
      if (!p) {
        Fail(why);
        continue;
      }
      sets.push_back(std::move(*p));
    }
    std::lock_guard<std::mutex> lock(mu_);
    rounds_++;
    for (const auto& a : sets) {
      if (a.roots_only) continue;
      std::vector<pki::Certificate> intermediates(a.chain.begin() + 1, a.chain.end());
      for (const auto& b : sets) {
        checks_++;
        auto v = pki::VerifyChain(a.chain[0], intermediates, b.roots, now);
        if (!v.ok()) {
          FailLocked(a.name + " does not verify against " + b.name +
                     "'s root-cert.pem: " + v.status().message());
        }
      }
    }
    std::vector<const continuity_detail::Parsed*> peers;
    for (const auto& p : sets) {
      if (!p.roots_only) peers.push_back(&p);
    }
    for (size_t i = 0; i + 1 < peers.size(); ++i) {
      handshakes_++;
      const std::string err = continuity_detail::Handshake(*peers[i], *peers[i + 1]);
      if (!err.empty()) {
        FailLocked("TLS " + peers[i]->name + " <- " + peers[i + 1]->name + ": " + err);
      }
    }
  }

  int failures() const {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  int checks() const {
    std::lock_guard<std::mutex> lock(mu_);
    return checks_;
  }
  int handshakes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return handshakes_;
  }
  int rounds() const {
    std::lock_guard<std::mutex> lock(mu_);
    return rounds_;
  }
  std::string Report() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::ostringstream out;
    out << rounds_ << " rounds, " << checks_ << " chain checks, " << handshakes_ << " handshakes, "
        << failures_ << " failures";
    for (const auto& [why, n] : reasons_) out << "\n  " << n << "x " << why;
    return out.str();
  }

 private:
  void Fail(const std::string& why) {
    std::lock_guard<std::mutex> lock(mu_);
    FailLocked(why);
  }
  void FailLocked(const std::string& why) {
    failures_++;
    if (reasons_.size() < 20 || reasons_.count(why)) reasons_[why]++;
  }

  Loader load_;
  std::chrono::milliseconds period_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  int failures_ = 0, checks_ = 0, handshakes_ = 0, rounds_ = 0;
  std::map<std::string, int> reasons_;
};

}  // namespace istioca::testing
