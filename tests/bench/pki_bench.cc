// pki_bench — what istio-ca's pki library costs next to the raw OpenSSL operations it wraps,
// measured in one process so the ratios mean something. scripts/bench-pki runs it and prints
// the ratios (ours / raw).
//
//   Pipeline/*        CSR PEM -> Csr::FromPem (parse + verify) -> IssueLeaf -> PEM, the work of
//                     one CreateCertificate call, on 1 and 2 threads
//   RawVerifySign/*   its floor: one ECDSA P-256 verify + one sign with preloaded keys
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

#include "pki/csr.h"
#include "pki/issue.h"
#include "pki/key.h"

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

BENCHMARK_MAIN();
