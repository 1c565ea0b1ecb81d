// tests/trust/rotation_walk_test.cc — whole rotations walked minute by minute on a FakeClock by a
// simulated CA that obeys Decide(), with real certificates. The property checked at every step
// is DESIGN's invariant: every unexpired certificate the CA has issued verifies against every
// bundle a consumer may still hold (every distributed object's bundle, the one it replaced for a
// propagation delay after the write, and the bundle handed out with each unexpired certificate).
// Every transition is persisted and parsed back before it takes effect, and every 5 minutes the
// state is restored as a restarted CA would: the restored state must decide exactly as the
// original.
#include <map>
#include <set>

#include "base/time.h"
#include "pki/verify.h"
#include "tests/trust/trust_fixture.h"

namespace istioca::ca::trust {
namespace {

using namespace testing;
using Certs = std::vector<pki::Certificate>;

Certs ParseAll(const std::string& pem) {
  return pem.empty() ? Certs{} : Must(pki::Certificate::ParsePemChain(pem));
}

Certs BundleOf(const TrustState& s) {
  Certs out;
  for (const RootEntry& r : s.roots) out.push_back(ParseAll(r.cert_pem).front());
  return out;
}

struct Sim {
  FakeClock clock{T0()};
  TrustPolicy policy;
  TrustState state;
  Duration leaf_ttl = 1h;
  Duration issue_every = 10min;
  size_t writes_per_step = 1;  // slow distribution: one object per minute
  std::set<size_t> stuck;      // objects that never get written (unsafe path)
  bool ignore_rule2 = false;   // negative control: activate as soon as prepared

  struct Object {
    uint64_t generation = 0;
    Certs bundle;
    Certs replaced;  // the bundle before the last write
    TimePoint written_at{};
  };
  std::vector<Object> objects = std::vector<Object>(6);
  struct Leaf {
    pki::Certificate cert;
    Certs chain;
    Certs bundle;  // handed out with it
    TimePoint not_after;
  };
  std::vector<Leaf> leaves;
  pki::PrivateKey leaf_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  std::optional<TimePoint> last_issue;

  // What happened, for the assertions.
  std::vector<std::pair<Stage, TimePoint>> stages;
  std::vector<Decision> decisions;
  size_t prepared_steps_with_partial_distribution = 0;
  size_t violations = 0;
  std::string first_violation;
  std::optional<TimePoint> forced_at;

  explicit Sim(TrustState initial) : state(std::move(initial)) {
    for (Object& o : objects) {
      o.generation = state.bundle_generation;
      o.bundle = BundleOf(state);
      o.written_at = clock.Now();
    }
    state = RecordPublished(state, state.bundle_generation, clock.Now());
    stages.push_back({state.stage, clock.Now()});
  }

  Publication Published() const {
    Publication p{state.bundle_generation, 0, objects.size(), std::nullopt};
    for (const Object& o : objects) {
      if (o.generation != state.bundle_generation) continue;
      ++p.updated;
      if (!p.last_write || o.written_at > *p.last_write) p.last_write = o.written_at;
    }
    return p;
  }

  void Persist(TrustState next) {
    // Written before acting, read back as a restarted CA would.
    state = Must(ParseTrustState(SerializeTrustState(next)));
    if (stages.back().first != state.stage) stages.push_back({state.stage, clock.Now()});
  }

  void Issue(TimePoint now) {
    if (last_issue && now - *last_issue < issue_every) return;
    last_issue = now;
    pki::Signer signer{ParseAll(state.active.cert_pem).front(),
                       Must(pki::PrivateKey::FromPem(state.active.key_pem))};
    auto leaf = pki::IssueLeaf(signer, leaf_key.get(),
                               {{"spiffe://cluster.local/ns/a/sa/b"}, {}, leaf_ttl}, now);
    if (!leaf.ok()) return;  // an expired signer signs nothing
    Certs chain = ParseAll(state.active.chain_pem);
    chain.insert(chain.begin(), signer.cert);
    leaves.push_back({*leaf, chain, BundleOf(state), leaf->NotAfter()});
    state = RecordIssued(state, leaf->NotAfter());
  }

  void Distribute(TimePoint now) {
    size_t writes = 0;
    for (size_t i = 0; i < objects.size() && writes < writes_per_step; ++i) {
      Object& o = objects[i];
      if (o.generation == state.bundle_generation || stuck.count(i)) continue;
      o.replaced = o.bundle;
      o.bundle = BundleOf(state);
      o.generation = state.bundle_generation;
      o.written_at = now;
      ++writes;
    }
    Publication p = Published();
    if (p.updated == p.total) state = RecordPublished(state, p.generation, *p.last_write);
  }

  void Check(TimePoint now) {
    // Distinct bundles only (most consumers hold the same one), keyed by their DER.
    std::map<std::string, const Certs*> held;
    auto hold = [&](const Certs& bundle) {
      std::string key;
      for (const pki::Certificate& c : bundle) key += c.ToDer();
      held.emplace(key, &bundle);
    };
    for (const Object& o : objects) {
      hold(o.bundle);
      if (!o.replaced.empty() && now < o.written_at + policy.propagation_delay) hold(o.replaced);
    }
    // A consumer keeps the bundle handed out with a certificate as long as it may use the
    // certificate (Go accepts it through NotAfter inclusive).
    std::erase_if(leaves, [&](const Leaf& l) { return now > l.not_after; });
    for (const Leaf& l : leaves) hold(l.bundle);
    for (const Leaf& l : leaves) {
      // OpenSSL, which verifies here, treats the NotAfter second itself as expired.
      if (now >= l.not_after) continue;
      for (const auto& [key, bundle] : held) {
        auto v = pki::VerifyChain(l.cert, l.chain, *bundle, now);
        if (!v.ok()) {
          if (violations++ == 0) {
            first_violation = FormatRfc3339(now) + " stage " + StageName(state.stage) +
                              ": leaf of " + l.chain.front().Subject() + ": " +
                              v.status().message();
          }
        }
      }
    }
  }

  void Step() {
    const TimePoint now = clock.Now();
    Issue(now);
    Distribute(now);
    Decision d = Decide(state, Published(), now, policy);
    // A restart every 5 minutes and at every transition (parsing keys costs CPU under OpenSSL 3).
    if (decisions.size() % 5 == 0 ||
        (d.action != Action::kNone && d.action != Action::kPublishBundle)) {
      TrustState restored = Must(ParseTrustState(SerializeTrustState(state)));
      CHECK(Decide(restored, Published(), now, policy) == d);
      state = std::move(restored);
    }
    decisions.push_back(d);
    if (state.stage == Stage::kPrepared && d.objects_updated < d.objects_total && !d.unsafe()) {
      ++prepared_steps_with_partial_distribution;
      CHECK(d.gate == Gate::kDistribution);
    }
    if (ignore_rule2 && state.stage == Stage::kPrepared) d.action = Action::kActivate;
    switch (d.action) {
      case Action::kActivate: Persist(Must(Activate(state, {}, now, false))); break;
      case Action::kForceActivateUnsafe:
        forced_at = now;
        Persist(Must(Activate(state, {}, now, true)));
        CHECK(state.forced_activation);  // persisted, for rotate --status and the alert
        break;
      case Action::kRetire: Persist(Must(Retire(state, now))); break;
      case Action::kNone:
      case Action::kPublishBundle: break;
    }
    Check(now);
    clock.Advance(std::chrono::minutes(1));
  }

  void Run(Duration length) {
    const TimePoint end = clock.Now() + length;
    while (clock.Now() < end) Step();
  }

  std::vector<Stage> StageTrail() const {
    std::vector<Stage> out;
    for (const auto& [stage, at] : stages) out.push_back(stage);
    return out;
  }
  TimePoint EnteredAt(Stage stage, size_t nth = 0) const {
    for (const auto& [s, at] : stages) {
      if (s == stage && nth-- == 0) return at;
    }
    FAIL("stage never entered");
    return {};
  }
};

const std::vector<Stage> kFullRotation = {Stage::kStable, Stage::kPrepared, Stage::kActive,
                                          Stage::kStable};

TEST_CASE(
    "a new-key rotation walks stable → prepared → active → stable with no failed verification",
    "[trust][walk]") {
  Root r1{"r1.example", 24h * 365, T0()};
  Root r2{"r2.example", 24h * 365, T0()};
  Sim sim(StableState(r1.cert.ToPem(), r1.pem(), r1.cert.NotAfter(), T0()));
  sim.Run(90min);  // leaves issued under r1, the latest expiring at 2h20m + backdate
  const TimePoint prepared_at = sim.clock.Now();
  const TimePoint last_old_bundle = *sim.state.latest_issued_not_after;
  sim.Persist(
      Must(Prepare(sim.state, r2.pem(), r2.cert.ToPem(), {r1.cert.ToPem()}, {}, prepared_at)));
  sim.Run(5h);

  INFO(sim.first_violation);
  CHECK(sim.violations == 0);
  CHECK(sim.StageTrail() == kFullRotation);
  // 6 objects, one write a minute: prepared stays prepared, gated by "N of 6".
  CHECK(sim.prepared_steps_with_partial_distribution >= 5);
  // Activation at the first step past the latest old-bundle NotAfter (later than the
  // propagation delay here), never earlier.
  const TimePoint activated = sim.EnteredAt(Stage::kActive);
  CHECK(activated > last_old_bundle);
  CHECK(activated - last_old_bundle <= 1min);
  // Retirement at the first step past the old signer's last NotAfter.
  const TimePoint retired = sim.EnteredAt(Stage::kStable, 1);
  CHECK(retired > activated + sim.leaf_ttl - sim.issue_every);
  CHECK(sim.state.roots.size() == 1);
  CHECK(SameCertificate(sim.state.roots[0].cert_pem, r2.cert.ToPem()));
  CHECK(sim.state.active == r2.pem());
  CHECK_FALSE(sim.state.forced_activation);
}

TEST_CASE("with a short workload TTL the propagation delay is what gates activation",
          "[trust][walk]") {
  Root r1{"r1.example", 24h * 365, T0()};
  Root r2{"r2.example", 24h * 365, T0()};
  Sim sim(StableState(r1.cert.ToPem(), r1.pem(), r1.cert.NotAfter(), T0()));
  sim.leaf_ttl = 3min;
  sim.issue_every = 1min;
  sim.Run(10min);
  sim.Persist(
      Must(Prepare(sim.state, r2.pem(), r2.cert.ToPem(), {r1.cert.ToPem()}, {}, sim.clock.Now())));
  sim.Run(30min);
  INFO(sim.first_violation);
  CHECK(sim.violations == 0);
  CHECK(sim.StageTrail() == kFullRotation);
  bool saw_propagation_gate = false;
  for (const Decision& d : sim.decisions) saw_propagation_gate |= d.gate == Gate::kPropagationDelay;
  CHECK(saw_propagation_gate);
}

TEST_CASE("a plugged-in change to a new root is staged and carried through with no failure",
          "[trust][walk][plugged]") {
  Root r1{"r1.example", 24h * 365, T0()};
  Root r2{"r2.example", 24h * 365, T0()};
  Intermediate i1{r1, "i1.example", 24h * 30, T0()};
  Intermediate j1{r2, "j1.example", 24h * 30, T0()};
  Sim sim(StableState(r1.cert.ToPem(), i1.pem(), i1.cert.NotAfter(), T0()));
  sim.Run(60min);
  // The operator replaces the files: j1 under r2, root-cert.pem holding only r2.
  PluggedChange c = Must(
      ClassifyPluggedChange(sim.state, {j1.cert.ToPem(), "", r2.cert.ToPem()}, sim.clock.Now()));
  REQUIRE(c.signer == SignerChange::kNewRoot);
  sim.Persist(
      Must(Prepare(sim.state, j1.pem(), c.anchor_root_pem, c.removed_roots, {}, sim.clock.Now())));
  sim.Run(5h);
  INFO(sim.first_violation);
  CHECK(sim.violations == 0);
  CHECK(sim.StageTrail() == kFullRotation);
  REQUIRE(sim.state.roots.size() == 1);
  CHECK(SameCertificate(sim.state.roots[0].cert_pem, r2.cert.ToPem()));
}

TEST_CASE("a same-root intermediate renewal swaps at once with no failure",
          "[trust][walk][plugged]") {
  Root r1{"r1.example", 24h * 365, T0()};
  Intermediate i1{r1, "i1.example", 24h * 30, T0()};
  Intermediate i2{r1, "i2.example", 24h * 30, T0()};
  Sim sim(StableState(r1.cert.ToPem(), i1.pem(), i1.cert.NotAfter(), T0()));
  sim.Run(60min);
  PluggedChange c = Must(
      ClassifyPluggedChange(sim.state, {i2.cert.ToPem(), "", r1.cert.ToPem()}, sim.clock.Now()));
  REQUIRE(c.signer == SignerChange::kSameRootRenewal);
  sim.Persist(Must(SwapSigner(sim.state, i2.pem())));
  sim.Run(2h);
  INFO(sim.first_violation);
  CHECK(sim.violations == 0);
  CHECK(sim.StageTrail() == std::vector<Stage>{Stage::kStable});
  CHECK(sim.state.active == i2.pem());
}

TEST_CASE("when the old signer would expire first the activation is forced and flagged",
          "[trust][walk][unsafe]") {
  Root r1{"r1.example", 24h * 365, T0()};
  Root r2{"r2.example", 24h * 365, T0()};
  Intermediate old_signer{r1, "old.example", 3h, T0()};
  Sim sim(StableState(r1.cert.ToPem(), old_signer.pem(), old_signer.cert.NotAfter(), T0()));
  sim.Run(30min);
  sim.stuck = {5};  // one namespace's ConfigMap can never be written
  sim.Persist(
      Must(Prepare(sim.state, r2.pem(), r2.cert.ToPem(), {r1.cert.ToPem()}, {}, sim.clock.Now())));
  sim.Run(4h);
  REQUIRE(sim.forced_at);
  CHECK(*sim.forced_at == old_signer.cert.NotAfter() - sim.policy.unsafe_activation_lead);
  CHECK(sim.StageTrail() == kFullRotation);  // retired once the old signer's leaves expired
  size_t forced = 0;
  for (const Decision& d : sim.decisions) forced += d.unsafe() ? 1 : 0;
  CHECK(forced == 1);
  // Announced before it happened: as soon as rule 2 can no longer hold in time (here the
  // propagation delay no longer fits before the forced instant), every decision names it.
  size_t first_flag = 0;
  while (first_flag < sim.decisions.size() && !sim.decisions[first_flag].unsafe_at) ++first_flag;
  REQUIRE(first_flag < sim.decisions.size());
  CHECK(sim.decisions[first_flag].unsafe_at == *sim.forced_at);
  CHECK_FALSE(sim.decisions[first_flag].unsafe());
  CHECK(T0() + first_flag * 1min < *sim.forced_at);
  // The stuck consumer cannot verify the new signer's leaves: the unsafe path is unsafe.
  CHECK(sim.violations > 0);
}

TEST_CASE("negative control: activating without rule 2 is caught by the checker", "[trust][walk]") {
  Root r1{"r1.example", 24h * 365, T0()};
  Root r2{"r2.example", 24h * 365, T0()};
  Sim sim(StableState(r1.cert.ToPem(), r1.pem(), r1.cert.NotAfter(), T0()));
  sim.Run(30min);
  sim.ignore_rule2 = true;
  sim.Persist(
      Must(Prepare(sim.state, r2.pem(), r2.cert.ToPem(), {r1.cert.ToPem()}, {}, sim.clock.Now())));
  sim.Run(20min);
  CHECK(sim.violations > 0);
}

}  // namespace
}  // namespace istioca::ca::trust
