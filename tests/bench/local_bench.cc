// local_bench — the secret controller on a directory at fleet size.
//
// Provisions N service accounts (default 10,000) with EC P-256 keys through the real controller
// and the real local backends, timing until every secret is published; then swaps in a new root
// and times until every secret carries it. Each phase is printed next to the raw crypto cost of
// the same work (key generation + signing + PEM encoding, same thread count, no I/O) measured
// in the same run, and peak RSS. Usage: local_bench [--count N] [--workers W] [--dir DIR]
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "base/metrics.h"
#include "ca/controller/controller.h"
#include "ca/core/ca_loader.h"
#include "ca/local/ca_store.h"
#include "ca/local/local_backend.h"
#include "pki/issue.h"
#include "pki/key.h"

using namespace istioca;
using namespace istioca::ca;
namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

namespace {

double Since(Steady::time_point t0) {
  return std::chrono::duration<double>(Steady::now() - t0).count();
}

long PeakRssKiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// The crypto the controller does per secret, without any I/O, on `workers` threads.
double RawCrypto(const CaBundle& bundle, int count, int workers) {
  std::atomic<int> next{0};
  const auto t0 = Steady::now();
  auto run = [&] {
    for (int i = next++; i < count; i = next++) {
      auto key = pki::PrivateKey::Generate(pki::KeyType::kEcP256);
      auto leaf = pki::IssueLeaf(bundle.signer, key->get(),
                                 {{"spiffe://cluster.local/ns/bench/sa/sa-" + std::to_string(i)},
                                  {},
                                  std::chrono::hours(24)},
                                 istioca::SystemClock::Get().Now());
      std::string pem = leaf->ToPem() + key->ToPem()->str();
      if (pem.empty()) std::abort();
    }
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < workers; ++i) threads.emplace_back(run);
  run();
  for (auto& t : threads) t.join();
  return Since(t0);
}

int CountCarrying(const std::string& dir, const std::string& roots_pem, int* published) {
  int carrying = 0;
  *published = 0;
  for (const auto& ns : fs::directory_iterator(dir + "/secrets")) {
    for (const auto& s : fs::directory_iterator(ns.path())) {
      std::ifstream in(s.path() / "root-cert.pem");
      std::string content((std::istreambuf_iterator<char>(in)), {});
      if (!content.empty()) ++*published;
      if (content == roots_pem) ++carrying;
    }
  }
  return carrying;
}

}  // namespace

int main(int argc, char** argv) {
  int count = 10000, workers = 2;
  std::string dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--count")
      count = std::stoi(argv[i + 1]);
    else if (a == "--workers")
      workers = std::stoi(argv[i + 1]);
    else if (a == "--dir")
      dir = argv[i + 1];
  }
  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "istioca-bench-XXXXXX").string();
    dir = mkdtemp(tmpl.data());
  }
  (void)ConfigureLogging("warn", false);
  const auto& clock = SystemClock::Get();
  MetricsRegistry metrics;

  // Service accounts: 10 namespaces.
  auto t = Steady::now();
  for (int i = 0; i < count; ++i) {
    const std::string ns = dir + "/serviceaccounts/bench-" + std::to_string(i % 10);
    if (i < 10) fs::create_directories(ns);
    std::ofstream(ns + "/sa-" + std::to_string(i));
  }
  std::printf("setup: %d service-account files in %.2f s (dir %s)\n", count, Since(t), dir.c_str());

  LocalCaStore ca_store(dir + "/ca");
  auto bundle = LoadOrCreateSelfSigned(
      ca_store, {"cluster.local", std::chrono::hours(87600), pki::KeyType::kEcP256}, clock.Now());
  if (!bundle.ok()) {
    std::cerr << bundle.status().ToString() << "\n";
    return 1;
  }
  Authority authority(IssuancePolicy{}, clock);
  authority.SetBundle(*bundle);
  LocalServiceAccounts sas(dir);
  LocalSecretStore store(dir);
  ControllerOptions options;
  options.workers = workers;
  Controller controller(authority, sas, store, clock, metrics, options);
  if (!sas.Start().ok() || !store.Start().ok()) return 1;

  // Phase 1: provision.
  t = Steady::now();
  SyncStats s1 = controller.SyncAll();
  const double provision = Since(t);
  int published = 0;
  const int carrying1 = CountCarrying(dir, (*bundle)->RootsPem(), &published);
  const long rss1 = PeakRssKiB();
  const double raw1 = RawCrypto(**bundle, count, workers);

  // Phase 2: root change (a new self-signed root, as a plugged-in CA swap would be).
  auto key = pki::PrivateKey::Generate(pki::KeyType::kEcP256);
  auto root =
      pki::MakeSelfSignedRoot(*key, {"cluster.local", std::chrono::hours(87600)}, clock.Now());
  auto next = std::make_shared<CaBundle>(CaBundle{pki::Signer{*root, *key}, {}, {*root}});
  authority.SetBundle(next);
  t = Steady::now();
  SyncStats s2 = controller.SyncAll();
  const double rotate = Since(t);
  int published2 = 0;
  const int carrying2 = CountCarrying(dir, next->RootsPem(), &published2);
  const double raw2 = RawCrypto(*next, count, workers);

  // Phase 3: a resync with nothing to do (the steady-state cost every --resync-period).
  t = Steady::now();
  SyncStats s3 = controller.SyncAll();
  const double idle = Since(t);
  sas.Stop();
  store.Stop();

  std::printf("\n%-34s %10s %14s %10s\n", "phase", "wall (s)", "raw crypto (s)", "overhead");
  std::printf("%-34s %10.2f %14.2f %9.2fx\n", "provision (create all secrets)", provision, raw1,
              provision / raw1);
  std::printf("%-34s %10.2f %14.2f %9.2fx\n", "root change (refresh all secrets)", rotate, raw2,
              rotate / raw2);
  std::printf("%-34s %10.2f %14s %10s\n", "idle resync (nothing to do)", idle, "-", "-");
  std::printf("\ncreated=%d failed=%d published=%d carrying_root=%d\n", s1.created, s1.failed,
              published, carrying1);
  std::printf("refreshed=%d failed=%d carrying_new_root=%d/%d unchanged_after=%d\n", s2.refreshed,
              s2.failed, carrying2, published2, s3.unchanged);
  std::printf("peak RSS: %.1f MiB after provisioning, %.1f MiB at the end; workers=%d, cores=%u\n",
              rss1 / 1024.0, PeakRssKiB() / 1024.0, workers, std::thread::hardware_concurrency());
  const bool ok = carrying1 == count && carrying2 == count && provision <= 10 && rotate <= 10;
  std::printf("target (<= 10 s each, all %d carrying the root): %s\n", count,
              ok ? "MET" : "NOT MET");
  std::error_code ec;
  if (argc < 2 || std::string(argv[argc - 1]) != "--keep") fs::remove_all(dir, ec);
  return carrying1 == count && carrying2 == count ? 0 : 1;
}
