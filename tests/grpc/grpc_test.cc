// The CSR service over real TLS on 127.0.0.1: both APIs, authentication, authorization,
// refusals, limits, serving-certificate renewal and root changes, metrics.
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <sstream>

#include "base/log.h"
#include "ca/daemon/liveness.h"
#include "grpc_fixture.h"
#include "pki/pem.h"
#include "pki/tls_probe.h"
#include "pki/verify.h"

namespace istioca::testing {
namespace {

const std::string kAlice = "spiffe://cluster.local/ns/ns1/sa/alice";
const std::string kBob = "spiffe://cluster.local/ns/ns1/sa/bob";

pki::Certificate Parse1(const std::string& pem) {
  auto certs = Must(pki::Certificate::ParsePemChain(pem));
  REQUIRE(certs.size() == 1);
  return certs[0];
}

double CounterValue(MetricsRegistry& m, const std::string& name, const Labels& labels = {}) {
  return m.GetCounter(name, "", labels).Value();
}

TEST_CASE("modern API issues the caller's identity whatever the CSR asks, chain ends with the root",
          "[grpc]") {
  GrpcFixture f(true, {}, /*intermediate=*/true);
  ClientCreds alice = f.ClientCert(kAlice);
  auto ch = f.Channel(&alice);
  Call c = CreateCertificate(ch.get(), CsrPem({kBob}), 3600);
  INFO(c.status.error_message());
  REQUIRE(c.status.ok());
  REQUIRE(c.chain.size() == 3);  // leaf, intermediate, root bundle
  pki::Certificate leaf = Parse1(c.chain[0]);
  CHECK(leaf.UriSans() == std::vector<std::string>{kAlice});
  CHECK(leaf.Lifetime() == std::chrono::hours(1) + pki::kClockSkewBackdate);
  CHECK(c.chain[2] == f.authority.Bundle()->RootsPem());
  for (const auto& e : c.chain) CHECK(e.back() == '\n');
  CHECK(pki::VerifyChain(leaf, {Parse1(c.chain[1])}, {Parse1(c.chain[2])}, f.clock.Now()).ok());
  CHECK(CounterValue(f.metrics, "citadel_server_success_cert_issuance_count") == 1);
}

TEST_CASE(
    "legacy API signs the CSR's identity when it is the caller's, chain empty for a root signer",
    "[grpc]") {
  GrpcFixture f;
  ClientCreds alice = f.ClientCert(kAlice);
  auto ch = f.Channel(&alice);
  Call c = HandleCsr(ch.get(), CsrPem({kAlice}), 60);
  INFO(c.status.error_message());
  REQUIRE(c.status.ok());
  pki::Certificate leaf = Parse1(c.chain[0]);
  CHECK(leaf.UriSans() == std::vector<std::string>{kAlice});
  CHECK(c.chain[1].empty());
  CHECK(pki::VerifyChain(leaf, {}, f.authority.Bundle()->roots, f.clock.Now()).ok());
}

TEST_CASE("a bearer token authenticates through TokenReview, and reviews are cached", "[grpc]") {
  GrpcFixture f;
  auto ch = f.Channel();
  Call a = CreateCertificate(ch.get(), CsrPem(), 0, "token:ns2:web");
  INFO(a.status.error_message());
  REQUIRE(a.status.ok());
  CHECK(Parse1(a.chain[0]).UriSans() ==
        std::vector<std::string>{"spiffe://cluster.local/ns/ns2/sa/web"});
  Call b =
      HandleCsr(ch.get(), CsrPem({"spiffe://cluster.local/ns/ns2/sa/web"}), 0, "token:ns2:web");
  REQUIRE(b.status.ok());
  CHECK(f.reviewer->reviews == 1);
  CHECK(CreateCertificate(ch.get(), CsrPem(), 0, "forged").status.error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
  CHECK(CreateCertificate(ch.get(), CsrPem(), 0, "unreachable").status.error_code() ==
        grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("local mode (no TokenReviewer) accepts client certificates only", "[grpc]") {
  GrpcFixture f(/*with_reviewer=*/false);
  auto anon = f.Channel();
  CHECK(CreateCertificate(anon.get(), CsrPem(), 0, "token:ns2:web").status.error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
  ClientCreds alice = f.ClientCert(kAlice);
  auto ch = f.Channel(&alice);
  CHECK(CreateCertificate(ch.get(), CsrPem()).status.ok());
}

struct HostileRow {
  const char* name;
  bool legacy;
  std::function<std::string()> csr;
  int64_t ttl;  // seconds (modern) or minutes (legacy)
  bool authenticated;
  grpc::StatusCode code;
};

std::string GarbageSignatureCsr() {
  // The CSR's signature made by another key: flip one byte inside the signature.
  std::string pem = CsrPem({kAlice});
  std::string bytes = Must(pki::Csr::FromPem(pem)).Der();
  bytes[bytes.size() - 5] ^= 0x55;
  return pki::EncodePem("CERTIFICATE REQUEST", bytes);
}

std::string CaTrueCsr() {
  pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::UniquePtr<X509_REQ> req(X509_REQ_new());
  X509_REQ_set_pubkey(req.get(), key.get());
  X509_EXTENSIONS* exts = sk_X509_EXTENSION_new_null();
  sk_X509_EXTENSION_push(
      exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE"));
  sk_X509_EXTENSION_push(
      exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, ("URI:" + kAlice).c_str()));
  X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_sign(req.get(), key.get(), EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, n);
  BIO_free(bio);
  return out;
}

TEST_CASE("hostile requests get the right code and nothing is issued", "[grpc][hostile]") {
  using SC = grpc::StatusCode;
  auto row =
      GENERATE(HostileRow{"garbage PEM", false, [] { return std::string("not a csr at all"); }, 0,
                          true, SC::INVALID_ARGUMENT},
               HostileRow{"signature does not match key", false, GarbageSignatureCsr, 0, true,
                          SC::INVALID_ARGUMENT},
               HostileRow{"CSR asks CA:TRUE", false, CaTrueCsr, 0, true, SC::INVALID_ARGUMENT},
               HostileRow{"legacy: another identity", true, [] { return CsrPem({kBob}); }, 0, true,
                          SC::PERMISSION_DENIED},
               HostileRow{"legacy: DNS identity", true,
                          [] { return CsrPem({}, pki::KeyType::kEcP256, {"evil.example"}); }, 0,
                          true, SC::PERMISSION_DENIED},
               HostileRow{"RSA-1024", false,
                          [] {
                            pki::UniquePtr<EVP_PKEY> k(EVP_RSA_gen(1024));
                            return Must(pki::Csr::Build(pki::PrivateKey::Adopt(std::move(k)),
                                                        {{kAlice}, {}, ""}))
                                .ToPem();
                          },
                          0, true, SC::INVALID_ARGUMENT},
               HostileRow{"1 MiB CSR", false, [] { return std::string(1 << 20, 'A'); }, 0, true,
                          SC::INVALID_ARGUMENT},
               HostileRow{"TTL over max (modern)", false, [] { return CsrPem({kAlice}); },
                          2161LL * 3600, true, SC::INVALID_ARGUMENT},
               HostileRow{"TTL far over max (modern)", false, [] { return CsrPem({kAlice}); },
                          INT64_MAX, true, SC::INVALID_ARGUMENT},
               HostileRow{"TTL over max (legacy)", true, [] { return CsrPem({kAlice}); }, INT32_MAX,
                          true, SC::INVALID_ARGUMENT},
               HostileRow{"negative TTL", false, [] { return CsrPem({kAlice}); }, -60, true,
                          SC::INVALID_ARGUMENT},
               HostileRow{"negative TTL (legacy)", true, [] { return CsrPem({kAlice}); }, -1, true,
                          SC::INVALID_ARGUMENT},
               HostileRow{"legacy CSR without SAN", true, [] { return CsrPem(); }, 0, true,
                          SC::INVALID_ARGUMENT},
               HostileRow{"no credentials", false, [] { return CsrPem({kAlice}); }, 0, false,
                          SC::UNAUTHENTICATED},
               HostileRow{"no credentials (legacy)", true, [] { return CsrPem({kAlice}); }, 0,
                          false, SC::UNAUTHENTICATED});
  // One server for the whole table, with a rate limit that the table does not reach.
  static GrpcFixture* f = new GrpcFixture(true, ca::GrpcLimits{64 * 1024, 1000, 1000});
  static ClientCreds alice = f->ClientCert(kAlice);
  auto ch = row.authenticated ? f->Channel(&alice) : f->Channel();
  const double issued_before =
      CounterValue(f->metrics, "citadel_server_success_cert_issuance_count");
  Call c = row.legacy ? HandleCsr(ch.get(), row.csr(), static_cast<int32_t>(row.ttl))
                      : CreateCertificate(ch.get(), row.csr(), row.ttl);
  INFO(row.name << ": " << c.status.error_message());
  CHECK(c.status.error_code() == row.code);
  CHECK(c.chain.empty());
  CHECK(CounterValue(f->metrics, "citadel_server_success_cert_issuance_count") == issued_before);
  // No error text carries PEM material back.
  CHECK(c.status.error_message().find("-----BEGIN") == std::string::npos);
  CHECK(c.status.error_message().find("AAAA") == std::string::npos);
  // The server keeps serving.
  CHECK(CreateCertificate(f->Channel(&alice).get(), CsrPem()).status.ok());
}

TEST_CASE("a client certificate from another CA cannot connect", "[grpc]") {
  GrpcFixture f;
  GrpcFixture other;
  ClientCreds stranger = other.ClientCert(kAlice);
  auto ch = f.Channel(&stranger);
  CHECK(CreateCertificate(ch.get(), CsrPem()).status.error_code() == grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("per-identity rate limit refuses with ResourceExhausted and refills with time",
          "[grpc]") {
  ca::GrpcLimits limits;
  limits.per_identity_qps = 1;
  limits.per_identity_burst = 2;
  GrpcFixture f(true, limits);
  ClientCreds alice = f.ClientCert(kAlice);
  ClientCreds bob = f.ClientCert(kBob);
  auto a = f.Channel(&alice);
  CHECK(CreateCertificate(a.get(), CsrPem()).status.ok());
  CHECK(CreateCertificate(a.get(), CsrPem()).status.ok());
  CHECK(CreateCertificate(a.get(), CsrPem()).status.error_code() ==
        grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(CreateCertificate(f.Channel(&bob).get(), CsrPem()).status.ok());  // others unaffected
  f.clock.Advance(std::chrono::seconds(1));
  CHECK(CreateCertificate(a.get(), CsrPem()).status.ok());
  CHECK(CounterValue(f.metrics, "citadel_server_csr_refusal_count", {{"reason", "rate_limited"}}) ==
        1);
}

TEST_CASE("rate limiter table is bounded; only a refilled least-recently-used bucket is evicted",
          "[grpc]") {
  ca::RateLimiter rl(1, 1, 2);
  TimePoint t = T0();
  CHECK(rl.Allow("a", t));
  CHECK(rl.Allow("b", t));
  CHECK_FALSE(rl.Allow("c", t));  // table full of drained buckets: refuse, do not grow
  CHECK(rl.size() == 2);
  t += std::chrono::seconds(2);
  CHECK(rl.Allow("c", t));  // a (least recently used) refilled: evicted for c
  CHECK(rl.size() == 2);
  CHECK(rl.Allow("d", t));  // then b
  CHECK(rl.size() == 2);
  CHECK_FALSE(rl.Allow("e", t));  // c is the oldest now, and drained: refuse
  CHECK(rl.size() == 2);
  CHECK_FALSE(rl.Allow("d", t));  // d was not replaced: its bucket is still drained
}

TEST_CASE("a rate limiter at its bound stays there and decides on a newcomer in bounded work",
          "[grpc]") {
  constexpr size_t kBound = 10000;
  ca::RateLimiter rl(1, 1, kBound);
  TimePoint t = T0();
  for (size_t i = 0; i < kBound; ++i) REQUIRE(rl.Allow("id" + std::to_string(i), t));
  REQUIRE(rl.size() == kBound);
  // Every bucket drained: newcomers are refused, each after looking at one bucket.
  uint64_t before = rl.eviction_checks();
  for (int i = 0; i < 1000; ++i) CHECK_FALSE(rl.Allow("new" + std::to_string(i), t));
  CHECK(rl.eviction_checks() - before <= 1000);
  CHECK(rl.size() == kBound);
  // Refilled: each newcomer takes one old bucket's place, after looking at one bucket.
  t += std::chrono::seconds(2);
  before = rl.eviction_checks();
  for (int i = 0; i < 1000; ++i) CHECK(rl.Allow("later" + std::to_string(i), t));
  CHECK(rl.eviction_checks() - before <= 1000);
  CHECK(rl.size() == kBound);
  CHECK_FALSE(rl.Allow("later0", t));  // tracked, and drained by its one call
}

// Lines written by one component's logger while it lives.
class LogCapture {
 public:
  explicit LogCapture(const std::string& component)
      : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)),
        logger_(Logger(component)),
        level_(logger_->level()) {
    sink_->set_pattern("%v");
    logger_->sinks().push_back(sink_);
    logger_->set_level(spdlog::level::info);
  }
  ~LogCapture() {
    auto& sinks = logger_->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    logger_->set_level(level_);
  }
  std::vector<std::string> Lines() {
    sink_->flush();
    std::vector<std::string> lines;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> logger_;
  spdlog::level::level_enum level_;
};

TEST_CASE("a flood of refusals writes a bounded number of log lines and counts the rest",
          "[grpc]") {
  FakeClock clock(T0());
  ca::Authority authority({}, clock);
  authority.SetBundle(MakeBundle(T0()));
  MetricsRegistry m;
  ca::GrpcLimits limits;
  limits.refusal_log_lines_per_second = 10;
  ca::CsrService svc(authority, std::make_shared<FakeTokenReviewer>(), limits, m, clock);
  const ca::PeerCredentials anonymous;
  LogCapture log("grpc");
  int refused = 0;
  for (int i = 0; i < 10000; ++i) {
    if (!svc.Handle(anonymous, {ca::CsrApi::kModern, "csr", 0}).ok()) ++refused;
  }
  CHECK(refused == 10000);
  CHECK(CounterValue(m, "citadel_server_csr_refusal_count", {{"reason", "unauthenticated"}}) ==
        10000);
  std::vector<std::string> lines = log.Lines();
  CHECK(lines.size() == 10);
  // Another reason has its own allowance.
  ca::PeerCredentials alice;
  alice.has_cert = true;
  alice.cert_uris = {kAlice};
  CHECK_FALSE(svc.Handle(alice, {ca::CsrApi::kModern, "not a csr", 0}).ok());
  CHECK(log.Lines().size() == 11);
  // A second later the next line comes with the count of the lines held back.
  clock.Advance(std::chrono::seconds(1));
  CHECK_FALSE(svc.Handle(anonymous, {ca::CsrApi::kModern, "csr", 0}).ok());
  lines = log.Lines();
  REQUIRE(lines.size() == 13);
  CHECK(lines[11].find("refusal lines suppressed reason=unauthenticated count=9990") !=
        std::string::npos);
  CHECK(lines[12].find("refused csr") != std::string::npos);
}

TEST_CASE("CA not ready is Unavailable", "[grpc]") {
  FakeClock clock(T0());
  ca::Authority authority({}, clock);
  MetricsRegistry m;
  ca::CsrService svc(authority, std::make_shared<FakeTokenReviewer>(), {}, m, clock);
  ca::PeerCredentials peer;
  peer.authorization = {"Bearer token:ns:sa"};
  std::string csr = CsrPem();
  auto r = svc.Handle(peer, {ca::CsrApi::kModern, csr, 0});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK(
      m.GetCounter("citadel_server_csr_sign_err_count", "", {{"error", "CA_NOT_READY"}}).Value() ==
      1);
}

TEST_CASE("the serving certificate is renewed past half its life without a restart", "[grpc]") {
  GrpcFixture f;
  auto first = Must(pki::FetchPeerChain(f.Address(), "istio-ca", std::chrono::seconds(10)));
  REQUIRE(!first.certs.empty());
  pki::CertInfo info = pki::Describe(first.certs[0]);
  CHECK(std::find(info.dns_sans.begin(), info.dns_sans.end(),
                  "istio-ca.istio-system.svc.cluster.local") != info.dns_sans.end());
  auto again = Must(pki::FetchPeerChain(f.Address(), "istio-ca", std::chrono::seconds(10)));
  CHECK(again.certs[0] == first.certs[0]);  // not due: same certificate
  f.clock.Advance(first.certs[0].Lifetime() / 2 + std::chrono::minutes(1));
  auto renewed = Must(pki::FetchPeerChain(f.Address(), "istio-ca", std::chrono::seconds(10)));
  CHECK_FALSE(renewed.certs[0] == first.certs[0]);
  CHECK(renewed.certs[0].NotBefore() > first.certs[0].NotBefore());
}

TEST_CASE("the serving key is held once and shared, not copied per handshake", "[grpc]") {
  GrpcFixture f;
  ca::ServingCert& serving = f.server->serving_cert();
  auto a = Must(serving.Current());
  auto b = Must(serving.Current());
  CHECK(a.get() == b.get());  // the same snapshot, so the same key bytes
  // As addresses: a failure must not print the key.
  CHECK(static_cast<const void*>(a->key_pem.str().data()) ==
        static_cast<const void*>(b->key_pem.str().data()));
  // Handshakes take references too: the snapshot is shared by us and whoever asked.
  const long holders = a.use_count();
  REQUIRE(
      Must(pki::FetchPeerChain(f.Address(), "istio-ca", std::chrono::seconds(10))).certs.size() >=
      1);
  CHECK(Must(serving.Current()).get() == a.get());
  CHECK(a.use_count() == holders);  // no handshake kept a copy of its own
  // Renewal replaces the snapshot whole; the old one lives only as long as its holders.
  f.clock.Advance(a->leaf.Lifetime() / 2 + std::chrono::minutes(1));
  auto renewed = Must(serving.Current());
  CHECK(renewed.get() != a.get());
  CHECK(renewed->generation == a->generation + 1);
}

TEST_CASE("ServingCert::Due decides on bundle change, half life and near expiry", "[grpc]") {
  TestCa ca;
  pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate cert = ca.Leaf("spiffe://cluster.local/x", key, std::chrono::hours(24));
  auto b1 = MakeBundle(T0());
  auto b2 = MakeBundle(T0());
  CHECK_FALSE(ca::ServingCert::Due(cert, b1.get(), b1.get(), T0() + std::chrono::hours(11)));
  CHECK(ca::ServingCert::Due(cert, b1.get(), b1.get(), T0() + std::chrono::hours(12)));
  CHECK(ca::ServingCert::Due(cert, b1.get(), b2.get(), T0()));
  CHECK(ca::ServingCert::Due(cert, b1.get(), b1.get(), T0() + std::chrono::hours(24)));
}

TEST_CASE("a root change is picked up by the next connection", "[grpc]") {
  GrpcFixture f;
  ClientCreds old_alice = f.ClientCert(kAlice);
  const std::string old_roots = f.RootsPem();
  REQUIRE(CreateCertificate(f.Channel(&old_alice).get(), CsrPem()).status.ok());
  f.authority.SetBundle(MakeBundle(f.clock.Now()));
  ClientCreds new_alice = f.ClientCert(kAlice);
  // New CA: the server presents a certificate from it and verifies clients against it.
  Call c = CreateCertificate(f.Channel(&new_alice).get(), CsrPem());
  INFO(c.status.error_message());
  CHECK(c.status.ok());
  CHECK(CreateCertificate(f.Channel(&old_alice, old_roots).get(), CsrPem()).status.error_code() ==
        grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("liveness self-check goes through the gRPC server", "[grpc]") {
  GrpcFixture f;
  const std::string identity = ca::LivenessIdentity("cluster.local", "istio-system");
  CHECK(identity == "spiffe://cluster.local/ns/istio-system/sa/istio-ca-liveness");
  CHECK(f.server->Ready());
  Status s = f.server->SelfCheck(identity, std::chrono::seconds(10));
  INFO(s.ToString());
  CHECK(s.ok());
  CHECK(CounterValue(f.metrics, "grpc_server_handled_total",
                     {{"grpc_service", "istio.v1.auth.IstioCAService"},
                      {"grpc_method", "HandleCSR"},
                      {"grpc_type", "unary"},
                      {"grpc_code", "OK"}}) == 1);
  f.server->Stop();
  CHECK_FALSE(f.server->Ready());
  CHECK_FALSE(f.server->SelfCheck(identity, std::chrono::seconds(2)).ok());
}

TEST_CASE("metrics use Istio's names and count codes per method", "[grpc]") {
  GrpcFixture f;
  auto anon = f.Channel();
  CreateCertificate(anon.get(), CsrPem());
  ClientCreds alice = f.ClientCert(kAlice);
  CreateCertificate(f.Channel(&alice).get(), "garbage");
  CreateCertificate(f.Channel(&alice).get(), CsrPem());
  const std::string text = f.metrics.Render();
  for (const char* want :
       {"citadel_server_csr_count 3", "citadel_server_authentication_failure_count 1",
        "citadel_server_csr_parsing_err_count 1", "citadel_server_success_cert_issuance_count 1",
        "grpc_code=\"Unauthenticated\"", "grpc_code=\"InvalidArgument\"",
        "citadel_server_csr_phase_seconds_bucket{phase=\"sign\""}) {
    INFO(want);
    CHECK(text.find(want) != std::string::npos);
  }
}

TEST_CASE("token review cache is bounded in size and lifetime; errors are not cached", "[grpc]") {
  auto inner = std::make_shared<FakeTokenReviewer>();
  FakeClock clock(T0());
  ca::TokenReviewCache cache(inner, clock, {2, std::chrono::seconds(60), std::chrono::seconds(5)});
  REQUIRE(cache.Review("token:a:b").ok());
  REQUIRE(cache.Review("token:a:b").ok());
  CHECK(inner->reviews == 1);
  clock.Advance(std::chrono::seconds(61));
  REQUIRE(cache.Review("token:a:b").ok());
  CHECK(inner->reviews == 2);
  CHECK_FALSE(cache.Review("bad").ok());
  CHECK_FALSE(cache.Review("bad").ok());
  CHECK(inner->reviews == 3);  // negative answer cached
  clock.Advance(std::chrono::seconds(6));
  CHECK_FALSE(cache.Review("bad").ok());
  CHECK(inner->reviews == 4);
  CHECK(cache.Review("unreachable").status().code() == Code::kUnavailable);
  CHECK(cache.Review("unreachable").status().code() == Code::kUnavailable);
  CHECK(inner->reviews == 6);
  REQUIRE(cache.Review("token:c:d").ok());
  CHECK(cache.size() == 2);
}

TEST_CASE("the token cache key is the token's SHA-256", "[grpc]") {
  const std::string key = Must(ca::TokenCacheKey("abc"));
  REQUIRE(key.size() == 32);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : key) hex += {kHex[c >> 4], kHex[c & 15]};
  CHECK(hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("a token whose cache key cannot be computed is refused, never given a shared key",
          "[grpc]") {
  auto inner = std::make_shared<FakeTokenReviewer>();
  FakeClock clock(T0());
  bool digest_fails = false;
  ca::TokenReviewCache cache(inner, clock, {}, [&](std::string_view token) -> Result<std::string> {
    if (digest_fails) return Internal("digest failed");
    return ca::TokenCacheKey(token);
  });
  digest_fails = true;
  auto alice = cache.Review("token:ns1:alice");
  CHECK_FALSE(alice.ok());
  // Had both tokens got the same (empty) key, the forged one would be answered as alice.
  auto forged = cache.Review("forged");
  REQUIRE_FALSE(forged.ok());
  CHECK(forged.status().code() != Code::kOk);
  CHECK(cache.size() == 0);
  // Through the authenticator the caller is told to retry, and nothing is issued.
  ca::Authenticator authn("cluster.local", std::make_shared<ca::TokenReviewCache>(
                                               inner, clock, ca::TokenCacheOptions{},
                                               [](std::string_view) -> Result<std::string> {
                                                 return Internal("digest failed");
                                               }));
  ca::PeerCredentials peer;
  peer.authorization = {"Bearer token:ns1:alice"};
  auto caller = authn.Authenticate(peer);
  REQUIRE_FALSE(caller.ok());
  CHECK(caller.status().code() == Code::kUnavailable);
  digest_fails = false;
  CHECK(cache.Review("token:ns1:alice").ok());
  CHECK_FALSE(cache.Review("forged").ok());
}

TEST_CASE("bearer token extraction takes the first exact 'Bearer ' value", "[grpc]") {
  CHECK(ca::ExtractBearerToken({"Basic x", "Bearer abc", "Bearer def"}) == "abc");
  CHECK(ca::ExtractBearerToken({"bearer abc"}).empty());
  CHECK(ca::ExtractBearerToken({"Bearer "}).empty());
}

}  // namespace
}  // namespace istioca::testing
