// pki_bench — what istio-ca's pki library costs next to the raw OpenSSL operations it wraps,
// measured in one process so the ratios mean something. scripts/bench-pki runs it and prints
// the ratios (ours / raw).
//
//   CreateCertificate what the gRPC service asks of the libraries per call: Csr::FromPem, the
//                     CSR's SANs and CA request, the key rule, Authority::Sign, the response's
//                     PEM, the serial and NotAfter for the event (no gRPC, no TLS)
//   Pipeline/*        CSR PEM -> Csr::FromPem (parse + verify) -> IssueLeaf -> PEM, on 1 and 2
//                     threads
//   RawVerifySign/*   one ECDSA P-256 verify + one sign through the one-shot EVP_DigestVerify /
//                     EVP_DigestSign with preloaded keys (init, hashing and fetches included)
//   CryptoFloor       the floor as `openssl speed ecdsap256` counts it: EVP_PKEY_verify +
//                     EVP_PKEY_sign of a 32-byte digest on contexts prepared once
//   IssueLeaf         build + sign a workload certificate from a parsed public key
//   RawSign           one EVP_DigestSign (SHA-256, P-256) of a TBS the size of a leaf's
//   CsrFromPem        Csr::FromPem on an EC P-256 CSR
//   RawVerify         one EVP_DigestVerify of a CSR-sized message with a preloaded public key
//   KeyGen / RawKeyGen   PrivateKey::Generate(ec-p256) vs EVP_PKEY_Q_keygen
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ca/core/authority.h"
#include "pki/csr.h"
#include "pki/issue.h"
#include "pki/key.h"
#include "pki/spiffe.h"

using namespace istioca;
using namespace istioca::pki;

namespace {

template <class T>
T OrDie(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "pki_bench: %s: %s\n", what, r.status().ToString().c_str());
    std::abort();
  }
  return std::move(r).value();
}

std::string RawSignOnce(EVP_PKEY* key, const std::string& msg) {
  UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  unsigned char sig[128];
  size_t len = sizeof sig;
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(msg.data()),
                     msg.size()) != 1) {
    std::abort();
  }
  return std::string(reinterpret_cast<char*>(sig), len);
}

bool RawVerifyOnce(EVP_PKEY* key, const std::string& msg, const std::string& sig) {
  UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1;
}

// Everything the benchmarks share, made once (thread-safe static init) and read-only after.
struct Fixture {
  PrivateKey ca_key = OrDie(PrivateKey::Generate(KeyType::kEcP256), "CA key");
  Certificate ca_cert =
      OrDie(MakeSelfSignedRoot(ca_key, {"cluster.local", std::chrono::hours(24 * 3650)},
                               SystemClock::Get().Now()),
            "CA cert");
  Signer signer{ca_cert, ca_key};
  PrivateKey subject_key = OrDie(PrivateKey::Generate(KeyType::kEcP256), "subject key");
  LeafTemplate tmpl{{"spiffe://cluster.local/ns/default/sa/sleep"}, {}, std::chrono::hours(24)};
  std::string csr_pem =
      OrDie(Csr::Build(subject_key, {{"spiffe://cluster.local/ns/default/sa/sleep"}, {}, ""}),
            "CSR")
          .ToPem();
  std::string tbs;       // a real leaf's TBSCertificate, the message RawSign signs
  std::string csr_info;  // a CSR-sized message, and its signature, for RawVerify
  std::string csr_info_sig;
  UniquePtr<EVP_PKEY> subject_pub;  // public half only, decoded once

  Fixture() {
    Certificate leaf =
        OrDie(IssueLeaf(signer, subject_key.get(), tmpl, SystemClock::Get().Now()), "leaf");
    unsigned char* der = nullptr;
    const int len = i2d_re_X509_tbs(leaf.get(), &der);
    tbs.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    Csr csr = OrDie(Csr::FromPem(csr_pem), "CSR parse");
    der = nullptr;
    const auto* csr_der = reinterpret_cast<const unsigned char*>(csr.Der().data());
    UniquePtr<X509_REQ> req(d2i_X509_REQ(nullptr, &csr_der, static_cast<long>(csr.Der().size())));
    const int info_len = i2d_re_X509_REQ_tbs(req.get(), &der);
    csr_info.assign(reinterpret_cast<char*>(der), static_cast<size_t>(info_len));
    OPENSSL_free(der);
    csr_info_sig = RawSignOnce(subject_key.get(), csr_info);
    subject_pub.reset(EVP_PKEY_dup(csr.PublicKey()));
    if (!RawVerifyOnce(subject_pub.get(), csr_info, csr_info_sig)) std::abort();
  }
};

const Fixture& F() {
  static const Fixture* f = new Fixture();
  return *f;
}

// The Authority the daemon would hold for the fixture's CA.
ca::Authority& A() {
  static ca::Authority* a = [] {
    auto* authority = new ca::Authority(ca::IssuancePolicy{}, SystemClock::Get());
    authority->SetBundle(
        std::make_shared<ca::CaBundle>(ca::CaBundle{F().signer, {}, {F().ca_cert}}));
    return authority;
  }();
  return *a;
}

void CreateCertificateOnce(const Fixture& f, ca::Authority& authority) {
  Csr csr = OrDie(Csr::FromPem(f.csr_pem), "CSR");
  const std::vector<std::string> uris = csr.UriSans();
  if (uris.empty() || csr.RequestsCa() || !CheckAcceptableKey(csr.PublicKey()).ok() ||
      !ParseSpiffeId(uris[0]).ok()) {
    std::abort();
  }
  ca::IssuedCert issued = OrDie(authority.Sign(csr, uris, {}, Duration::zero()), "sign");
  benchmark::DoNotOptimize(issued.CertChainPem());
  benchmark::DoNotOptimize(issued.RootCertPem());
  benchmark::DoNotOptimize(issued.leaf.SerialHex());
  benchmark::DoNotOptimize(issued.leaf.NotAfter());
}

void CreateCertificate(benchmark::State& state) {
  const Fixture& f = F();
  ca::Authority& authority = A();
  for (auto _ : state) CreateCertificateOnce(f, authority);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(CreateCertificate)->UseRealTime();

// Contexts prepared once, as `openssl speed` does: only the ECDSA operations remain.
struct FloorContexts {
  explicit FloorContexts(const Fixture& f)
      : sign(EVP_PKEY_CTX_new_from_pkey(nullptr, f.ca_key.get(), nullptr)),
        verify(EVP_PKEY_CTX_new_from_pkey(nullptr, f.subject_pub.get(), nullptr)) {
    UniquePtr<EVP_PKEY_CTX> subject_sign(
        EVP_PKEY_CTX_new_from_pkey(nullptr, f.subject_key.get(), nullptr));
    if (EVP_Digest(f.tbs.data(), f.tbs.size(), digest, &digest_len, EVP_sha256(), nullptr) != 1 ||
        EVP_PKEY_sign_init(sign.get()) != 1 || EVP_PKEY_verify_init(verify.get()) != 1 ||
        EVP_PKEY_sign_init(subject_sign.get()) != 1 ||
        EVP_PKEY_sign(subject_sign.get(), subject_sig, &subject_sig_len, digest, digest_len) != 1) {
      std::abort();
    }
  }
  // One verify of a signature by the subject key (the CSR check) and one sign by the CA key.
  void Round() {
    if (EVP_PKEY_verify(verify.get(), subject_sig, subject_sig_len, digest, digest_len) != 1) {
      std::abort();
    }
    size_t len = sizeof sig;
    if (EVP_PKEY_sign(sign.get(), sig, &len, digest, digest_len) != 1) std::abort();
    benchmark::DoNotOptimize(sig[0]);
  }

  UniquePtr<EVP_PKEY_CTX> sign;
  UniquePtr<EVP_PKEY_CTX> verify;
  unsigned char digest[32];
  unsigned int digest_len = 0;
  unsigned char subject_sig[128];
  size_t subject_sig_len = sizeof subject_sig;
  unsigned char sig[128];
};

void CryptoFloor(benchmark::State& state) {
  FloorContexts floor(F());
  for (auto _ : state) floor.Round();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(CryptoFloor)->UseRealTime();

void Pipeline(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    Csr csr = OrDie(Csr::FromPem(f.csr_pem), "CSR");
    Certificate cert =
        OrDie(IssueLeaf(f.signer, csr.PublicKey(), f.tmpl, SystemClock::Get().Now()), "issue");
    benchmark::DoNotOptimize(cert.ToPem());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(Pipeline)->Threads(1)->Threads(2)->UseRealTime();

void RawVerifySign(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    if (!RawVerifyOnce(f.subject_pub.get(), f.csr_info, f.csr_info_sig)) std::abort();
    benchmark::DoNotOptimize(RawSignOnce(f.ca_key.get(), f.tbs));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(RawVerifySign)->Threads(1)->Threads(2)->UseRealTime();

void IssueLeafBench(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        OrDie(IssueLeaf(f.signer, f.subject_pub.get(), f.tmpl, SystemClock::Get().Now()), "issue"));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(IssueLeafBench)->Name("IssueLeaf")->UseRealTime();

void RawSign(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) benchmark::DoNotOptimize(RawSignOnce(f.ca_key.get(), f.tbs));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(RawSign)->UseRealTime();

void CsrFromPem(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) benchmark::DoNotOptimize(OrDie(Csr::FromPem(f.csr_pem), "CSR"));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(CsrFromPem)->UseRealTime();

void RawVerify(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    if (!RawVerifyOnce(f.subject_pub.get(), f.csr_info, f.csr_info_sig)) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(RawVerify)->UseRealTime();

void KeyGen(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(OrDie(PrivateKey::Generate(KeyType::kEcP256), "keygen"));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(KeyGen)->UseRealTime();

void RawKeyGen(benchmark::State& state) {
  for (auto _ : state) {
    UniquePtr<EVP_PKEY> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (key == nullptr) std::abort();
    benchmark::DoNotOptimize(key.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(RawKeyGen)->UseRealTime();

}  // namespace

// `pki_bench --profile N [create|floor]`: N CreateCertificate calls (or N CryptoFloor rounds)
// and nothing else, after one warm-up that makes the fixture, for callgrind or perf:
// scripts/bench-pki divides the instruction counts of two such runs. Otherwise Google Benchmark.
int main(int argc, char** argv) {
  if ((argc == 3 || argc == 4) && std::string(argv[1]) == "--profile") {
    const long n = std::strtol(argv[2], nullptr, 10);
    const std::string what = argc == 4 ? argv[3] : "create";
    if (what == "floor") {
      FloorContexts floor(F());
      floor.Round();
      for (long i = 0; i < n; ++i) floor.Round();
      return 0;
    }
    CreateCertificateOnce(F(), A());
    for (long i = 0; i < n; ++i) CreateCertificateOnce(F(), A());
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
