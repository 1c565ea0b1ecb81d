// tests/trust/lifecycle_test.cc — the decisions and their gates at chosen instants, the
// triggers, and that a persisted state decides exactly as the one that was written.
#include "pki/verify.h"
#include "tests/trust/trust_fixture.h"

namespace istioca::ca::trust {
namespace {

using namespace testing;

struct Fixture {
  TrustPolicy policy;  // 2m propagation delay, 5m unsafe lead
  Root r1{"r1.example", 24h * 365, T0()};
  Root r2{"r2.example", 24h * 365, T0()};
  Intermediate i1{r1, "i1.example", 24h * 30, T0()};
  TrustState stable = StableState(r1.cert.ToPem(), i1.pem(), i1.cert.NotAfter(), T0());
};

TEST_CASE("prepared waits for distribution, then propagation, then the last old-bundle cert",
          "[trust][decide]") {
  Fixture f;
  // At 1h the CA has handed out certificates with the old bundle up to NotAfter 25h.
  TrustState s = Must(Prepare(f.stable, f.r2.pem(), f.r2.cert.ToPem(), {f.r1.cert.ToPem()},
                              {T0() + 25h}, T0() + 1h));
  CHECK(s.stage == Stage::kPrepared);
  CHECK(s.roots.size() == 2);  // rule 1: the new root is in the bundle before it signs
  CHECK(s.bundle_generation == 2);
  CHECK(s.active == f.stable.active);  // the old signer keeps signing

  // 3 of 10 objects carry generation 2: publish, nothing is known about the transition yet.
  Decision d = Decide(s, {2, 3, 10, T0() + 1h}, T0() + 1h, f.policy);
  CHECK(d.action == Action::kPublishBundle);
  CHECK(d.gate == Gate::kDistribution);
  CHECK(d.objects_updated == 3);
  CHECK(d.objects_total == 10);
  CHECK_FALSE(d.next_transition);
  CHECK(d.outstanding_not_after == T0() + 25h);
  // Counts about the previous generation do not count.
  CHECK(Decide(s, {1, 10, 10, T0() + 1h}, T0() + 1h, f.policy).action == Action::kPublishBundle);

  // All 10 carry it, the last written at 2h: gated by the certificates until 25h.
  Publication all = AllPublished(s, 10, T0() + 2h);
  d = Decide(s, all, T0() + 2h, f.policy);
  CHECK(d.action == Action::kNone);
  CHECK(d.gate == Gate::kCertsWithoutNewRoot);
  CHECK(d.next_transition == T0() + 25h + 1s);  // NotAfter is inclusive
  CHECK(d.outstanding_not_after == T0() + 25h);
  CHECK_FALSE(d.unsafe_at);  // the signer lives 30 days
  CHECK(Decide(s, all, T0() + 25h, f.policy).action == Action::kNone);
  CHECK(Decide(s, all, T0() + 25h + 1s, f.policy).action == Action::kActivate);
}

TEST_CASE("with no old-bundle certificate outstanding, the propagation delay gates activation",
          "[trust][decide]") {
  Fixture f;
  TrustState s = Must(Prepare(f.stable, f.r2.pem(), f.r2.cert.ToPem(), {}, {}, T0()));
  Publication all = AllPublished(s, 4, T0() + 10min);
  Decision d = Decide(s, all, T0() + 10min, f.policy);
  CHECK(d.gate == Gate::kPropagationDelay);
  CHECK(d.next_transition == T0() + 12min);
  CHECK(Decide(s, all, T0() + 12min - 1s, f.policy).action == Action::kNone);
  CHECK(Decide(s, all, T0() + 12min, f.policy).action == Action::kActivate);
  // The recorded publication serves a resumed CA that has not re-listed the objects yet.
  TrustState recorded = RecordPublished(s, s.bundle_generation, T0() + 10min);
  CHECK(Decide(recorded, {}, T0() + 12min, f.policy).action == Action::kActivate);
}

TEST_CASE("active retires the old root when the last certificate under it expires",
          "[trust][decide]") {
  Fixture f;
  TrustState p = Must(
      Prepare(f.stable, f.r2.pem(), f.r2.cert.ToPem(), {f.r1.cert.ToPem()}, {T0() + 5h}, T0()));
  REQUIRE_FALSE(Activate(f.stable, {}, T0(), false).ok());  // nothing prepared
  TrustState a = Must(Activate(p, {T0() + 29h}, T0() + 5h, false));
  CHECK(a.stage == Stage::kActive);
  CHECK(a.active == f.r2.pem());
  CHECK(a.previous == f.i1.pem());
  CHECK(a.previous_signer_until == T0() + 29h);
  CHECK(a.roots[0].retire_after == T0() + 29h);
  CHECK_FALSE(a.forced_activation);

  Publication all = AllPublished(a, 4, T0() + 1h);
  Decision d = Decide(a, all, T0() + 6h, f.policy);
  CHECK(d.action == Action::kNone);
  CHECK(d.gate == Gate::kPreviousSignerCerts);
  CHECK(d.next_transition == T0() + 29h + 1s);
  CHECK(d.outstanding_not_after == T0() + 29h);
  REQUIRE_FALSE(Retire(a, T0() + 29h).ok());
  CHECK(Decide(a, all, T0() + 29h, f.policy).action == Action::kNone);
  CHECK(Decide(a, all, T0() + 29h + 1s, f.policy).action == Action::kRetire);
  TrustState done = Must(Retire(a, T0() + 29h + 1s));
  CHECK(done.stage == Stage::kStable);
  CHECK_FALSE(done.previous);
  REQUIRE(done.roots.size() == 1);
  CHECK(SameCertificate(done.roots[0].cert_pem, f.r2.cert.ToPem()));
  CHECK(done.bundle_generation == a.bundle_generation + 1);
  // The smaller bundle is published next.
  CHECK(Decide(done, all, T0() + 30h, f.policy).action == Action::kPublishBundle);
}

TEST_CASE("the old signer expiring first forces an unsafe activation, announced in advance",
          "[trust][decide][unsafe]") {
  Fixture f;
  Intermediate short_lived{f.r1, "short.example", 10h, T0()};
  TrustState stable =
      StableState(f.r1.cert.ToPem(), short_lived.pem(), short_lived.cert.NotAfter(), T0());
  // Leaves are clamped to the signer: the latest old-bundle NotAfter is its own NotAfter.
  TrustState s = Must(
      Prepare(stable, f.r2.pem(), f.r2.cert.ToPem(), {}, {short_lived.cert.NotAfter()}, T0() + 1h));
  const TimePoint forced_at = short_lived.cert.NotAfter() - f.policy.unsafe_activation_lead;
  Publication partial{s.bundle_generation, 9, 10, T0() + 2h};
  Decision d = Decide(s, partial, T0() + 2h, f.policy);
  CHECK(d.action == Action::kPublishBundle);
  CHECK(d.unsafe_at == forced_at);
  CHECK(d.next_transition == forced_at);
  d = Decide(s, partial, forced_at, f.policy);
  CHECK(d.action == Action::kForceActivateUnsafe);
  CHECK(d.unsafe());
  CHECK(d.gate == Gate::kActiveSignerExpiry);
  TrustState a = Must(Activate(s, {short_lived.cert.NotAfter()}, forced_at, /*forced=*/true));
  CHECK(a.forced_activation);
  CHECK(ParseTrustState(SerializeTrustState(a))->forced_activation);
}

TEST_CASE("a restored state decides exactly as the one that was written",
          "[trust][decide][resume]") {
  Fixture f;
  TrustState p = Must(Prepare(RecordIssued(f.stable, T0() + 20h), f.r2.pem(), f.r2.cert.ToPem(),
                              {f.r1.cert.ToPem()}, {}, T0() + 90s));
  TrustState a = Must(Activate(RecordPublished(p, p.bundle_generation, T0() + 3h), {T0() + 44h},
                               T0() + 20h, false));
  Intermediate i2{f.r1, "i2.example", 24h * 30, T0()};
  TrustState swapped = Must(SwapSigner(f.stable, i2.pem()));
  for (const TrustState* s : {&f.stable, &swapped, &p, &a}) {
    TrustState restored = Must(ParseTrustState(SerializeTrustState(*s)));
    for (Duration at : std::vector<Duration>{0h, 2h, 3h + 2min, 20h, 30h, 44h, 45h}) {
      for (const Publication& pub :
           {Publication{}, Publication{s->bundle_generation, 2, 5, T0() + 1h},
            AllPublished(*s, 5, T0() + 3h)}) {
        INFO(StageName(s->stage) << " at +" << FormatDuration(at));
        CHECK(Decide(restored, pub, T0() + at, f.policy) == Decide(*s, pub, T0() + at, f.policy));
      }
    }
  }
}

TEST_CASE("a rotation is refused unless stable", "[trust][decide]") {
  Fixture f;
  TrustState p = Must(Prepare(f.stable, f.r2.pem(), f.r2.cert.ToPem(), {}, {}, T0()));
  auto again = Prepare(p, f.r2.pem(), f.r2.cert.ToPem(), {}, {}, T0());
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == Code::kFailedPrecondition);
  REQUIRE_FALSE(Retire(p, T0() + 24h * 400).ok());
}

TEST_CASE("a self-signed root is re-issued when 20% of its life remains", "[trust][trigger]") {
  const TimePoint nb = T0();
  const TimePoint na = T0() + 24h * 100;
  CHECK(RootReissueAt(nb, na, 20) == T0() + 24h * 80);
  CHECK_FALSE(RootReissueDue(nb, na, 20, T0() + 24h * 80 - 1s));
  CHECK(RootReissueDue(nb, na, 20, T0() + 24h * 80));
  CHECK(RootReissueAt(nb, na, 0) == na);
  CHECK(RootReissueAt(nb, na, 100) == nb);
}

TEST_CASE("a same-key re-issued root replaces the old one in the bundle at once",
          "[trust][trigger]") {
  Fixture f;
  TrustState s = StableState(f.r1.cert.ToPem(), f.r1.pem(), f.r1.cert.NotAfter(), T0());
  pki::Certificate reissued =
      Must(pki::MakeSelfSignedRoot(f.r1.key, {"r1.example", 24h * 365}, T0() + 24h * 300));
  TrustState r = Must(ReissueRoot(s, {reissued.ToPem(), Must(f.r1.key.ToPem()).str(), ""}));
  CHECK(r.stage == Stage::kStable);
  REQUIRE(r.roots.size() == 1);
  CHECK(r.roots[0].cert_pem == reissued.ToPem());
  CHECK(r.active.cert_pem == reissued.ToPem());
  CHECK(r.bundle_generation == s.bundle_generation + 1);
  // Why it is immediate: a leaf of the old root certificate verifies against the new one.
  auto leaf_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate old_leaf =
      Must(pki::IssueLeaf(f.r1.signer(), leaf_key.get(),
                          {{"spiffe://cluster.local/ns/a/sa/b"}, {}, 24h}, T0() + 24h * 300));
  CHECK(pki::VerifyChain(old_leaf, {}, {reissued}, T0() + 24h * 300 + 1h).ok());
}

TEST_CASE("plugged-in changes: same-root renewal, new root, removed root, invalid",
          "[trust][trigger][plugged]") {
  Fixture f;
  Intermediate i2{f.r1, "i2.example", 24h * 30, T0()};
  Intermediate j1{f.r2, "j1.example", 24h * 30, T0()};
  Root r3{"r3.example", 24h * 365, T0()};
  const std::string r1 = f.r1.cert.ToPem(), r2 = f.r2.cert.ToPem(), r3pem = r3.cert.ToPem();

  PluggedChange c = Must(ClassifyPluggedChange(f.stable, {i2.cert.ToPem(), "", r1}, T0()));
  CHECK(c.signer == SignerChange::kSameRootRenewal);
  CHECK(c.added_roots.empty());
  CHECK(c.removed_roots.empty());
  TrustState swapped = Must(SwapSigner(f.stable, i2.pem()));
  CHECK(swapped.stage == Stage::kStable);
  CHECK(swapped.bundle_generation == f.stable.bundle_generation);  // nothing to redistribute

  c = Must(ClassifyPluggedChange(f.stable, {j1.cert.ToPem(), "", r1 + r2}, T0()));
  CHECK(c.signer == SignerChange::kNewRoot);
  CHECK(SameCertificate(c.anchor_root_pem, r2));
  REQUIRE(c.added_roots.size() == 1);
  CHECK(c.removed_roots.empty());

  c = Must(ClassifyPluggedChange(f.stable, {j1.cert.ToPem(), "", r2}, T0()));
  CHECK(c.signer == SignerChange::kNewRoot);
  REQUIRE(c.removed_roots.size() == 1);  // r1 leaves only through the rotation (rule 3)
  TrustState staged =
      Must(Prepare(f.stable, j1.pem(), c.anchor_root_pem, c.removed_roots, {}, T0()));
  CHECK(staged.roots.size() == 2);
  CHECK(staged.roots[0].leaving);

  // Same signer, an extra root removed from root-cert.pem: kept until its certificates expire.
  TrustState three = f.stable;
  three.roots.push_back({r3pem, std::nullopt, false});
  c = Must(ClassifyPluggedChange(three, {f.i1.cert.ToPem(), "", r1}, T0()));
  CHECK(c.signer == SignerChange::kNone);
  REQUIRE(c.removed_roots.size() == 1);
  TrustState held = Must(ScheduleRootRemoval(three, c.removed_roots[0], T0() + 48h));
  TrustPolicy policy;
  Publication all = AllPublished(held, 3, T0());
  CHECK(Decide(held, all, T0() + 1h, policy).next_transition == T0() + 48h + 1s);
  CHECK(Decide(held, all, T0() + 48h, policy).action == Action::kNone);
  CHECK(Decide(held, all, T0() + 48h + 1s, policy).action == Action::kRetire);
  TrustState dropped = Must(Retire(held, T0() + 48h + 1s));
  CHECK(dropped.roots.size() == 1);

  auto bad = ClassifyPluggedChange(f.stable, {j1.cert.ToPem(), "", r1 + r3pem}, T0());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK_FALSE(ClassifyPluggedChange(f.stable, {"junk", "", r1}, T0()).ok());
}

}  // namespace
}  // namespace istioca::ca::trust
