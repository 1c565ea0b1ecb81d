// TrustManager (ca/trust/manager.h): the loop that loads, decides, persists and applies the trust
// lifecycle, on an in-memory CaStore and a hand-moved clock. Each test names the rule it checks.
#include "ca/trust/manager.h"

#include <catch2/catch.hpp>

#include "ca/core/ca_loader.h"
#include "ca/trust/rotate.h"
#include "pki/verify.h"
#include "tests/ca/temp_dir.h"
#include "tests/trust/manager_fixture.h"
#include "tests/trust/trust_fixture.h"

using namespace istioca;
using namespace istioca::ca;
using namespace istioca::ca::trust;
using namespace istioca::ca::trust::testing;
using istioca::testing::TempDir;
using istioca::testing::WriteFile;

namespace {

size_t CertsIn(const std::string& pem) { return Must(pki::Certificate::ParsePemChain(pem)).size(); }

void StartRotationNow(ManagerFixture& f) {
  Must(StartRotation(f.store, {}, f.options.policy, f.clock.Now()));
}

// Plugged-in CA files in a temp dir: root A with intermediate I1, and what the tests switch to.
struct PluggedSetup {
  TempDir dir;
  PluggedCaFiles files{dir / "ca-cert.pem", dir / "ca-key.pem", dir / "root-cert.pem",
                       dir / "cert-chain.pem"};
  Root a{"root-a", 24h * 365, T0() - 72h};
  Intermediate i1{a, "inter-1", 24h * 30, T0() - 1h};
  Intermediate i2{a, "inter-2", 24h * 30, T0() - 1h};
  Root b{"root-b", 24h * 365, T0() - 72h};
  Intermediate j{b, "inter-j", 24h * 30, T0() - 1h};
  Intermediate expired{a, "expired", 24h, T0() - 48h};

  PluggedSetup() { Write(i1.cert, i1.key, a.cert.ToPem()); }
  void Write(const pki::Certificate& cert, const pki::PrivateKey& key, const std::string& roots) {
    WriteFile(files.signing_cert, cert.ToPem());
    WriteFile(files.signing_key, Must(key.ToPem()).str());
    WriteFile(files.root_cert, roots);
    WriteFile(files.cert_chain, "");
  }
  ManagerOptions Options() const {
    ManagerOptions o = SelfSignedManagerOptions();
    o.self_signed = false;
    o.plugged = files;
    return o;
  }
};

}  // namespace

TEST_CASE("Init on an empty store creates a self-signed stable record and serves it",
          "[trust][manager]") {
  ManagerFixture f;
  f.Start();
  CHECK(f.store.writes() == 1);
  const TrustState s = f.Stored();
  CHECK(s.stage == Stage::kStable);
  REQUIRE(s.roots.size() == 1);
  CHECK(CertOf(s.active.cert_pem) == CertOf(s.roots[0].cert_pem));
  CHECK(f.Signer() == CertOf(s.active.cert_pem));
  CHECK(f.Signer().IsSelfSigned());
  CHECK(f.Signer().Subject() == "O=cluster.local");
  CHECK(f.Roots() == 1);
  // What it signs verifies against what it publishes.
  const pki::Certificate leaf = f.Sign();
  CHECK(pki::VerifyChain(leaf, {}, f.authority->Bundle()->roots, f.clock.Now()).ok());
  CHECK(f.StageMetric() == 0);
  // Istio's keys are the active signer: an Istio reader of the record sees the same CA.
  CHECK(CertOf(Must(f.store.Load()).ca_cert_pem) == f.Signer());
}

TEST_CASE("two replicas starting on an empty store serve one CA", "[trust][manager]") {
  ManagerFixture f;
  Authority theirs(IssuancePolicy{}, f.clock);
  TrustManager other(theirs, f.store, f.clock, f.metrics, f.options, {});
  // The other replica stores its CA between our LoadRecord (NotFound) and our StoreRecord("").
  f.store.BeforeNextStore([&] { REQUIRE(other.Init().ok()); });
  f.Start();
  CHECK(f.store.writes() == 1);
  CHECK(f.Signer() == theirs.Bundle()->signer.cert);
}

TEST_CASE("Init on a record Istio wrote upgrades it in place with the same signer",
          "[trust][manager]") {
  const bool with_root_cert = GENERATE(true, false);  // Istio 0.x wrote only ca-cert/ca-key
  INFO("root-cert.pem present: " << with_root_cert);
  Root istio("cluster.local", 24h * 365, T0() - 24h);
  MemoryCaStore::Data legacy{{"ca-cert.pem", istio.cert.ToPem()},
                             {"ca-key.pem", Must(istio.key.ToPem()).str()}};
  if (with_root_cert) {
    legacy["root-cert.pem"] = istio.cert.ToPem();
    legacy["cert-chain.pem"] = "";
  }
  ManagerFixture f;
  f.store.SetLegacy(legacy);
  f.Start();
  CHECK(f.Signer() == istio.cert);
  CHECK(f.Roots() == 1);
  CHECK_FALSE(f.store.version().empty());  // upgraded: trust-state.json written
  const TrustState s = f.Stored();
  CHECK(s.stage == Stage::kStable);
  REQUIRE(s.roots.size() == 1);
  CHECK(CertOf(s.roots[0].cert_pem) == istio.cert);
  CHECK(CertOf(Must(f.store.Load()).ca_cert_pem) == istio.cert);
  f.Tick();
  CHECK(f.Signer() == istio.cert);
}

TEST_CASE(
    "a follower decides nothing, applies what others wrote, and records what it issues before "
    "handing it out",
    "[trust][manager]") {
  ManagerFixture f;
  f.Start(/*leading=*/false);
  const pki::Certificate old_root = f.Signer();
  const int writes = f.store.writes();  // Init created the record
  // Signed by this follower: the issuance bound is written before the certificate is returned.
  const pki::Certificate mine = f.Sign();
  CHECK(f.store.writes() == writes + 1);
  REQUIRE(f.Stored().latest_issued_not_after.has_value());
  CHECK(*f.Stored().latest_issued_not_after >= mine.NotAfter());
  f.Distributed();
  f.clock.Advance(1h);
  f.Tick();
  CHECK(f.store.writes() == writes + 1);  // within the bound: nothing more to write
  CHECK(f.published.empty());

  // So a prepare written by someone else already covers it.
  StartRotationNow(f);
  TrustState prepared = f.Stored();
  REQUIRE(prepared.without_next_root_until.has_value());
  CHECK(*prepared.without_next_root_until >= mine.NotAfter());
  f.Tick();
  CHECK(f.Roots() == 2);
  CHECK(f.Signer() == old_root);
  CHECK(f.manager->Snapshot().state.stage == Stage::kPrepared);
  CHECK(f.StageMetric() == 1);
  // Nothing to raise: the prepare already covered what it handed out with the old bundle.
  CHECK(f.store.writes() == writes + 2);
  CHECK(f.Stored() == prepared);
  // However long it waits, a follower does not activate (nor record progress).
  f.Distributed();
  f.clock.Advance(24h * 30);
  f.Tick();
  f.Tick();
  CHECK(f.store.writes() == writes + 2);
  CHECK(f.Stored() == prepared);
  CHECK(f.published.empty());

  std::string warning;
  Must(ForceActivate(f.store, f.options.policy, f.clock.Now(), warning));
  f.Tick();
  CHECK(f.Signer() == CertOf(prepared.next->cert_pem));
  CHECK(f.StageMetric() == 2);
}

TEST_CASE("a new-key rotation: prepared at once, active and retired at the recorded instants",
          "[trust][manager]") {
  const bool restart = GENERATE(false, true);
  INFO("restarted in every stage: " << restart);
  ManagerFixture f;
  f.Start();
  // A restart resumes the same stage, signer and bundle, then carries on from there.
  auto maybe_restart = [&] {
    if (!restart) return;
    const pki::Certificate signer = f.Signer();
    const size_t roots = f.Roots();
    const Stage stage = f.Stored().stage;
    f.Restart();
    f.published.clear();
    CHECK(f.Signer() == signer);
    CHECK(f.Roots() == roots);
    CHECK(f.manager->Snapshot().state.stage == stage);
    f.Tick();
    CHECK(f.Stored().stage == stage);
    CHECK(f.Signer() == signer);
  };
  const pki::Certificate old_root = f.Signer();
  f.Tick();
  CHECK(f.PublishCalls(1) == 1);
  const pki::Certificate before = f.Sign();  // handed out with the bundle lacking the new root
  f.Tick();
  maybe_restart();

  f.clock.Advance(1min);
  StartRotationNow(f);
  f.Tick();
  TrustState s = f.Stored();
  REQUIRE(s.stage == Stage::kPrepared);
  const pki::Certificate next = CertOf(s.next->cert_pem);
  // Rule 1: the new root is in what the Authority hands out before anything is signed under it.
  CHECK(f.Roots() == 2);
  CHECK(f.Signer() == old_root);
  CHECK(f.StageMetric() == 1);
  REQUIRE(f.PublishCalls(2) == 1);
  CHECK(CertsIn(f.published.back().first) == 2);
  REQUIRE(s.without_next_root_until);
  CHECK(*s.without_next_root_until >= before.NotAfter());
  maybe_restart();

  // Distribution incomplete: nothing activates, and the new generation is published only once.
  f.progress = {3, 5, f.clock.Now()};
  f.clock.Advance(1h);
  f.Tick();
  f.Tick();
  CHECK(f.Stored().stage == Stage::kPrepared);
  CHECK(f.PublishCalls(2) <= 1);
  const pki::Certificate during = f.Sign();  // still the old signer, under the old root

  // Distributed and the propagation delay passed, but `before` still holds the old bundle.
  f.clock.Advance(1h);
  f.Distributed();
  f.Tick();
  CHECK(f.Stored().published_generation == 2);
  f.clock.Advance(2min + 1s);
  f.Tick();
  s = f.Stored();
  CHECK(s.stage == Stage::kPrepared);
  CHECK(f.Signer() == old_root);
  f.clock.Set(*s.without_next_root_until);
  f.Tick();
  CHECK(f.Stored().stage == Stage::kPrepared);
  CHECK(f.Signer() == old_root);
  f.clock.Advance(1s);
  f.Tick();
  s = f.Stored();
  REQUIRE(s.stage == Stage::kActive);
  CHECK(f.Signer() == next);
  CHECK(f.Roots() == 2);
  CHECK(f.StageMetric() == 2);
  REQUIRE(s.previous_signer_until);
  // Rule 3 covers what the old signer signed while prepared.
  CHECK(*s.previous_signer_until >= during.NotAfter());
  maybe_restart();

  f.clock.Set(*s.previous_signer_until);
  f.Tick();
  CHECK(f.Stored().stage == Stage::kActive);
  CHECK(f.Roots() == 2);
  f.clock.Advance(1s);
  f.Tick();
  s = f.Stored();
  CHECK(s.stage == Stage::kStable);
  REQUIRE(s.roots.size() == 1);
  CHECK(CertOf(s.roots[0].cert_pem) == next);
  CHECK(f.Signer() == next);
  CHECK(f.Roots() == 1);
  CHECK(f.authority->Bundle()->roots[0] == next);
  CHECK(f.StageMetric() == 0);
  maybe_restart();
}

TEST_CASE("a certificate signed before the leader saw the prepare holds the activation back",
          "[trust][manager]") {
  ManagerFixture f;
  f.Start();
  f.Tick();
  // Signed after the leader's last tick, just before `rotate --start`: its NotAfter is past the
  // recorded bound (a longer TTL), so it was recorded before it was handed out.
  const pki::Certificate unseen = f.Sign(48h);
  StartRotationNow(f);
  CHECK(*f.Stored().without_next_root_until >= unseen.NotAfter());
  // Even if the process dies now (restart: a new Authority that never saw it), it holds back.
  f.Restart();
  f.Tick();
  const TrustState s = f.Stored();
  REQUIRE(s.stage == Stage::kPrepared);
  CHECK(*s.without_next_root_until >= unseen.NotAfter());
  f.Distributed();
  f.Tick();
  f.clock.Advance(3min);
  f.Tick();
  f.clock.Set(unseen.NotAfter());
  f.Tick();
  CHECK(f.Stored().stage == Stage::kPrepared);
  f.clock.Set(*s.without_next_root_until + 1s);
  f.Tick();
  CHECK(f.Stored().stage == Stage::kActive);
}

TEST_CASE("a write that loses the compare-and-swap keeps the other writer's change",
          "[trust][manager]") {
  ManagerFixture f;
  f.Start();
  f.Tick();
  // A sign that passed the bound check just before: the next tick wants to extend the bound.
  f.authority->SetIssuanceBound(f.clock.Now() + 24h * 365);
  const pki::Certificate leaf = f.Sign();
  // `rotate --start` writes between the leader's read and its write.
  f.store.BeforeNextStore([&] { StartRotationNow(f); });
  const Status lost = f.manager->Tick();
  CHECK(lost.code() == Code::kAborted);
  CHECK(f.store.aborted() == 1);
  REQUIRE(f.Stored().stage == Stage::kPrepared);
  // The next tick decides again on the other writer's record, and records what it wanted to.
  f.Tick();
  const TrustState s = f.Stored();
  CHECK(s.stage == Stage::kPrepared);
  CHECK(f.Roots() == 2);
  REQUIRE(s.latest_issued_not_after);
  CHECK(*s.latest_issued_not_after >= leaf.NotAfter());
  CHECK(*s.without_next_root_until >= leaf.NotAfter());
}

TEST_CASE("the self-signed root is re-issued with the same key in its grace period",
          "[trust][manager]") {
  ManagerOptions o = SelfSignedManagerOptions();
  o.self_signed_options.ttl = 24h * 10;  // 20% grace: due after 8 days
  ManagerFixture f(o);
  f.Start();
  const pki::Certificate first = f.Signer();
  f.Tick();
  f.clock.Advance(24h * 8 - 2h);
  f.Tick();
  CHECK(f.Signer() == first);
  f.clock.Advance(2h);
  f.Tick();
  const TrustState s = f.Stored();
  CHECK(s.stage == Stage::kStable);
  CHECK_FALSE(f.Signer() == first);
  CHECK(f.Signer().NotAfter() > first.NotAfter());
  CHECK(f.Roots() == 1);
  // Same key: what the old root signed verifies against the new one.
  const pki::Certificate leaf = f.Sign();
  CHECK(pki::VerifyChain(leaf, {}, {first}, f.clock.Now()).ok());
}

TEST_CASE("a root re-issue whose write loses the compare-and-swap is retried next tick",
          "[trust][manager]") {
  ManagerOptions o = SelfSignedManagerOptions();
  o.self_signed_options.ttl = 24h * 10;
  ManagerFixture f(o);
  f.Start();
  const pki::Certificate first = f.Signer();
  f.Tick();
  f.clock.Advance(24h * 8);
  f.store.BeforeNextStore([&] {
    auto r = Must(f.store.LoadRecord());
    REQUIRE(f.store.StoreRecord(r.data, r.version).ok());
  });
  CHECK(f.manager->Tick().code() == Code::kAborted);
  CHECK(f.Signer() == first);
  f.clock.Advance(1s);  // not a whole check interval
  f.Tick();
  CHECK_FALSE(f.Signer() == first);
  CHECK(f.Signer().NotAfter() > first.NotAfter());
}

// ---- Plugged-in files ----

TEST_CASE("plugged-in: an intermediate renewal under the same root swaps at once",
          "[trust][manager][plugged]") {
  PluggedSetup p;
  ManagerFixture f(p.Options());
  f.Start();
  CHECK(f.Signer() == p.i1.cert);
  f.Tick();
  p.Write(p.i2.cert, p.i2.key, p.a.cert.ToPem());
  f.Tick();
  CHECK(f.Signer() == p.i2.cert);
  CHECK(f.Roots() == 1);
  CHECK(f.Stored().stage == Stage::kStable);
  CHECK(CertOf(f.Stored().active.cert_pem) == p.i2.cert);
}

TEST_CASE("plugged-in: a change whose write loses the compare-and-swap is applied next tick",
          "[trust][manager][plugged]") {
  PluggedSetup p;
  ManagerFixture f(p.Options());
  f.Start();
  f.Tick();
  p.Write(p.i2.cert, p.i2.key, p.a.cert.ToPem());
  // Another writer rewrites the record between the leader's read and its write.
  f.store.BeforeNextStore([&] {
    auto r = Must(f.store.LoadRecord());
    REQUIRE(f.store.StoreRecord(r.data, r.version).ok());
  });
  CHECK(f.manager->Tick().code() == Code::kAborted);
  CHECK(f.Signer() == p.i1.cert);
  f.Tick();
  CHECK(f.Signer() == p.i2.cert);
  CHECK(CertOf(f.Stored().active.cert_pem) == p.i2.cert);
}

TEST_CASE("plugged-in: a signer under a new root is staged, and a restart keeps it staged",
          "[trust][manager][plugged]") {
  PluggedSetup p;
  ManagerFixture f(p.Options());
  f.Start();
  f.Tick();
  p.Write(p.j.cert, p.j.key, p.b.cert.ToPem());
  f.Distributed();
  f.Tick();
  TrustState s = f.Stored();
  REQUIRE(s.stage == Stage::kPrepared);
  CHECK(CertOf(s.next->cert_pem) == p.j.cert);
  CHECK(f.Signer() == p.i1.cert);  // the old signer keeps signing
  CHECK(f.Roots() == 2);           // the new root is trusted at once

  // Regression: a restart with the new files in place used to swap to them at once.
  f.Restart();
  f.Tick();
  CHECK(f.Stored().stage == Stage::kPrepared);
  CHECK(f.Signer() == p.i1.cert);
  CHECK(f.Roots() == 2);

  // Rule 2 then activates it (nothing was signed: the propagation delay is the only gate).
  f.Distributed();
  f.Tick();
  f.clock.Advance(2min + 1s);
  f.Tick();
  CHECK(f.Stored().stage == Stage::kActive);
  CHECK(f.Signer() == p.j.cert);
  f.clock.Advance(2s);
  f.Tick();
  s = f.Stored();
  CHECK(s.stage == Stage::kStable);
  REQUIRE(s.roots.size() == 1);
  CHECK(CertOf(s.roots[0].cert_pem) == p.b.cert);
  CHECK(f.Signer() == p.j.cert);
}

TEST_CASE("plugged-in: files that do not validate are rejected and the old signer keeps serving",
          "[trust][manager][plugged]") {
  struct Row {
    const char* name;
    void (*write)(PluggedSetup&);
  };
  const Row row = GENERATE(
      Row{"a signer with another CA's key",
          [](PluggedSetup& p) { p.Write(p.i2.cert, p.i1.key, p.a.cert.ToPem()); }},
      Row{"a signer under a root missing from root-cert.pem",
          [](PluggedSetup& p) { p.Write(p.j.cert, p.j.key, p.a.cert.ToPem()); }},
      Row{"an expired signer",
          [](PluggedSetup& p) { p.Write(p.expired.cert, p.expired.key, p.a.cert.ToPem()); }},
      Row{"a signing certificate that is not PEM",
          [](PluggedSetup& p) {
            p.Write(p.i2.cert, p.i2.key, p.a.cert.ToPem());
            WriteFile(p.files.signing_cert, "garbage");
          }},
      Row{"a root-cert.pem that is not PEM",
          [](PluggedSetup& p) { p.Write(p.i2.cert, p.i2.key, "garbage"); }});
  PluggedSetup p;
  INFO(row.name);
  ManagerFixture f(p.Options());
  f.Start();
  f.Tick();
  const std::string version = f.store.version();
  row.write(p);
  f.Tick();
  f.Tick();
  CHECK(f.Signer() == p.i1.cert);
  CHECK(f.store.version() == version);
  CHECK(f.metrics.GetCounter("istio_ca_ca_bundle_reload_failures_total", "").Value() == 1);
  CHECK(f.metrics.GetGauge("istio_ca_ca_bundle_reload_failing", "").Value() == 1);
  // Fixed files are picked up.
  p.Write(p.i2.cert, p.i2.key, p.a.cert.ToPem());
  f.Tick();
  CHECK(f.Signer() == p.i2.cert);
  CHECK(f.metrics.GetGauge("istio_ca_ca_bundle_reload_failing", "").Value() == 0);
}

TEST_CASE(
    "every applied trust change is an event: ca_changed for the signer, trust_transition "
    "for prepare, activate and retire",
    "[trust][manager][audit]") {
  RecentEvents events;
  ManagerOptions o = SelfSignedManagerOptions();
  o.events = &events;
  ManagerFixture f(o);
  f.Start();
  f.Tick();
  auto of = [&](const std::string& type) { return events.Snapshot({type}); };
  REQUIRE(of("ca_changed").size() == 1);
  CHECK(of("ca_changed")[0].fields.at("reason") == "loaded");
  CHECK(of("ca_changed")[0].fields.at("signer_serial") == f.Signer().SerialHex());
  CHECK(of("trust_transition").empty());

  StartRotationNow(f);
  f.Tick();
  REQUIRE(f.Stored().stage == Stage::kPrepared);
  auto t = of("trust_transition");
  REQUIRE(t.size() == 1);
  CHECK(t[0].fields.at("transition") == "prepare");
  CHECK(t[0].fields.at("stage") == "prepared");
  CHECK(t[0].fields.at("previous_stage") == "stable");
  CHECK(t[0].fields.at("bundle_generation") == "2");
  // Prepare serves a new bundle with the same signer: the served CA changed.
  CHECK(of("ca_changed").size() == 2);

  for (int i = 0; i < 200 && f.Stored().stage != Stage::kStable; ++i) {
    f.clock.Advance(1h);
    f.Distributed();
    f.Tick();
  }
  REQUIRE(f.Stored().stage == Stage::kStable);
  t = of("trust_transition");
  std::vector<std::string> names;
  for (const CaEvent& e : t) names.push_back(e.fields.at("transition"));
  CHECK(names == std::vector<std::string>{"prepare", "activate", "retire"});
  CHECK(t[1].fields.at("signer_serial") == f.Signer().SerialHex());  // the new signer
  const auto changed = of("ca_changed");
  CHECK(changed.back().fields.at("signer_serial") == f.Signer().SerialHex());
  CHECK(changed.back().fields.at("roots") == "1");
}
