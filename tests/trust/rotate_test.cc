// `istio-ca rotate` (ca/trust/rotate.h) on a record that a TrustManager leader keeps, with a
// hand-moved clock: the status tells the truth at each stage, and the operations refuse what the
// stage does not allow.
#include "ca/trust/rotate.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/trust/manager_fixture.h"
#include "tests/trust/trust_fixture.h"

using namespace istioca;
using namespace istioca::ca;
using namespace istioca::ca::trust;
using namespace istioca::ca::trust::testing;
using Catch::Contains;
using Json = nlohmann::json;

namespace {

RotateStatus StatusOf(ManagerFixture& f) {
  return Must(ReadStatus(f.store, f.options.policy, f.clock.Now()));
}
Json JsonOf(const RotateStatus& st) { return Json::parse(StatusJson(st)); }
std::string Rfc(TimePoint t) { return FormatRfc3339(t); }

}  // namespace

TEST_CASE("rotate --status in stable: no next transition", "[trust][rotate]") {
  ManagerFixture f;
  f.Start();
  f.Tick();
  const RotateStatus st = StatusOf(f);
  const std::string text = StatusText(st);
  CHECK_THAT(text, Contains("stage: stable"));
  CHECK_THAT(text, Contains("next transition: none\n"));
  CHECK_THAT(text, !Contains("waiting for"));
  const Json j = JsonOf(st);
  CHECK(j["stage"] == "stable");
  CHECK(j["roots"].size() == 1);
  CHECK(j["active_signer"]["subject"] == "O=cluster.local");
  CHECK(j["next_signer"].is_null());
  CHECK(j["next_transition"]["name"] == "none");
  CHECK(j["next_transition"]["gate"] == "none");
  CHECK(j["next_transition"]["at"].is_null());
}

TEST_CASE(
    "rotate --status through a rotation: distribution, certificates without the new root, "
    "then the old root's certificates",
    "[trust][rotate]") {
  ManagerFixture f;
  f.Start();
  f.Tick();
  const pki::Certificate leaf = f.Sign();
  f.Tick();
  f.clock.Advance(1min);
  const RotateStatus started = Must(StartRotation(f.store, {}, f.options.policy, f.clock.Now()));
  CHECK(started.state.stage == Stage::kPrepared);

  // Before the leader counted anything for the new generation.
  RotateStatus st = StatusOf(f);
  std::string text = StatusText(st);
  CHECK_THAT(text, Contains("stage: prepared"));
  CHECK_THAT(text, Contains("next transition: activate at (not yet known)"));
  CHECK_THAT(text, Contains("waiting for: distribution of bundle generation 2 (no count"));
  Json j = JsonOf(st);
  CHECK(j["roots"].size() == 2);
  CHECK_FALSE(j["next_signer"].is_null());
  CHECK(j["next_transition"]["name"] == "activate");
  CHECK(j["next_transition"]["gate"] == "distribution");
  CHECK(j["next_transition"]["at"].is_null());

  // The leader records 3 of 5.
  f.progress = {3, 5, f.clock.Now()};
  f.Tick();
  st = StatusOf(f);
  CHECK_THAT(StatusText(st),
             Contains("distribution: 3 of 5 secrets and ConfigMaps carry bundle generation 2"));
  j = JsonOf(st);
  CHECK(j["next_transition"]["gate"] == "distribution");
  CHECK(j["next_transition"]["objects_updated"] == 3);
  CHECK(j["next_transition"]["objects_total"] == 5);
  CHECK(j["next_transition"]["at"].is_null());
  // Signed by the old signer while prepared: what rule 3 will wait for.
  const pki::Certificate during = f.Sign(48h);

  // Everything carries it: now `leaf` (handed out with the old bundle) is what gates.
  f.clock.Advance(10min);
  f.Distributed();
  f.Tick();
  const TimePoint w = *f.Stored().without_next_root_until;
  REQUIRE(w >= leaf.NotAfter());
  st = StatusOf(f);
  text = StatusText(st);
  CHECK_THAT(text, Contains("next transition: activate at " + Rfc(w + 1s)));
  CHECK_THAT(text, Contains("waiting for: certificates handed out without the new root, valid "
                            "until " +
                            Rfc(w)));
  j = JsonOf(st);
  CHECK(j["next_transition"]["gate"] == "certificates-without-new-root");
  CHECK(j["next_transition"]["at"] == Rfc(w + 1s));
  CHECK(j["next_transition"]["outstanding_not_after"] == Rfc(w));

  // The leader activates at exactly the instant the status announced.
  f.clock.Set(w);
  f.Tick();
  CHECK(f.Stored().stage == Stage::kPrepared);
  f.clock.Advance(1s);
  f.Tick();
  REQUIRE(f.Stored().stage == Stage::kActive);
  const TimePoint p = *f.Stored().previous_signer_until;
  REQUIRE(p >= during.NotAfter());
  st = StatusOf(f);
  text = StatusText(st);
  CHECK_THAT(text, Contains("stage: active"));
  CHECK_THAT(text, Contains("next transition: retire at " + Rfc(p + 1s)));
  CHECK_THAT(text, Contains("certificates signed under the old root, valid until " + Rfc(p)));
  CHECK_THAT(text, !Contains("WARNING"));
  j = JsonOf(st);
  CHECK(j["stage"] == "active");
  CHECK(j["next_transition"]["name"] == "retire");
  CHECK(j["next_transition"]["gate"] == "previous-signer-certificates");
  CHECK(j["next_transition"]["at"] == Rfc(p + 1s));
  CHECK_FALSE(j["previous_signer"].is_null());

  f.clock.Set(p + 1s);
  f.Tick();
  st = StatusOf(f);
  CHECK_THAT(StatusText(st), Contains("next transition: none\n"));
  j = JsonOf(st);
  CHECK(j["stage"] == "stable");
  CHECK(j["roots"].size() == 1);
  CHECK(j["next_transition"]["gate"] == "none");
}

TEST_CASE("rotate --status: the propagation delay is the running daemon's, from its last write",
          "[trust][rotate]") {
  ManagerFixture f;  // --trust-propagation-delay 2m; nothing signed
  f.Start();
  f.Tick();
  Must(StartRotation(f.store, {}, f.options.policy, f.clock.Now()));
  f.Tick();
  f.clock.Advance(5min);
  const TimePoint last_write = f.clock.Now();
  f.Distributed();
  f.Tick();
  TrustPolicy cli = f.options.policy;
  cli.propagation_delay = 1h;  // what `istio-ca rotate` would assume on its own
  const RotateStatus st = Must(ReadStatus(f.store, cli, f.clock.Now()));
  CHECK_THAT(StatusText(st), Contains("next transition: activate at " + Rfc(last_write + 2min)));
  CHECK_THAT(StatusText(st), Contains("the propagation delay after the last bundle write (" +
                                      Rfc(last_write) + ")"));
  CHECK(JsonOf(st)["next_transition"]["gate"] == "propagation-delay");
}

TEST_CASE("rotate --start is refused unless stable, and for a plugged-in intermediate",
          "[trust][rotate]") {
  ManagerFixture f;
  f.Start();
  Must(StartRotation(f.store, {}, f.options.policy, f.clock.Now()));
  std::string version = f.store.version();
  auto again = StartRotation(f.store, {}, f.options.policy, f.clock.Now());
  CHECK(again.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(again.status().message(), Contains("already in progress (stage prepared)"));
  CHECK(f.store.version() == version);

  std::string warning;
  Must(ForceActivate(f.store, f.options.policy, f.clock.Now(), warning));
  version = f.store.version();
  auto active = StartRotation(f.store, {}, f.options.policy, f.clock.Now());
  CHECK(active.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(active.status().message(), Contains("stage active"));
  CHECK(f.store.version() == version);

  MemoryCaStore plugged;
  Root a("root-a", 24h * 365, T0() - 72h);
  Intermediate inter(a, "inter", 24h * 30, T0() - 1h);
  REQUIRE(
      plugged
          .StoreRecord(
              RecordOf(StableState(a.cert.ToPem(), inter.pem(), inter.cert.NotAfter(), T0())), "")
          .ok());
  auto refused = StartRotation(plugged, {}, f.options.policy, T0());
  CHECK(refused.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(refused.status().message(), Contains("plugged-in intermediate"));
  CHECK(plugged.writes() == 1);
}

TEST_CASE(
    "rotate --force-activate only from prepared, --force-retire only from active, each "
    "saying what it breaks",
    "[trust][rotate]") {
  ManagerFixture f;
  f.Start();
  f.Tick();
  f.Sign();
  f.Tick();
  std::string warning;
  CHECK(ForceActivate(f.store, f.options.policy, f.clock.Now(), warning).status().code() ==
        Code::kFailedPrecondition);
  CHECK(ForceRetire(f.store, f.options.policy, f.clock.Now(), warning).status().code() ==
        Code::kFailedPrecondition);
  CHECK(warning.empty());

  Must(StartRotation(f.store, {}, f.options.policy, f.clock.Now()));
  f.Tick();
  const TrustState prepared = f.Stored();
  const pki::Certificate next = CertOf(prepared.next->cert_pem);
  CHECK(ForceRetire(f.store, f.options.policy, f.clock.Now(), warning).status().code() ==
        Code::kFailedPrecondition);
  CHECK(warning.empty());

  const RotateStatus activated =
      Must(ForceActivate(f.store, f.options.policy, f.clock.Now(), warning));
  CHECK(activated.state.stage == Stage::kActive);
  CHECK(activated.state.forced_activation);
  CHECK_THAT(warning, Contains("reject peers signed by the new signer"));
  CHECK_THAT(warning, Contains(Rfc(*prepared.without_next_root_until)));
  CHECK_THAT(StatusText(activated), Contains("WARNING: the last activation was forced"));
  f.Tick();  // the leader follows the record
  CHECK(f.Signer() == next);
  CHECK(f.Roots() == 2);

  std::string again;
  CHECK(ForceActivate(f.store, f.options.policy, f.clock.Now(), again).status().code() ==
        Code::kFailedPrecondition);
  CHECK(again.empty());

  const TimePoint until = *f.Stored().previous_signer_until;
  std::string retire_warning;
  const RotateStatus retired =
      Must(ForceRetire(f.store, f.options.policy, f.clock.Now(), retire_warning));
  CHECK(retired.state.stage == Stage::kStable);
  REQUIRE(retired.state.roots.size() == 1);
  CHECK(CertOf(retired.state.roots[0].cert_pem) == next);
  CHECK_THAT(retire_warning, Contains("certificates signed under the old root (valid until " +
                                      Rfc(until) + ") no longer verify"));
  f.Tick();
  CHECK(f.Signer() == next);
  CHECK(f.Roots() == 1);
}
