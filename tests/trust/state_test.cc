// tests/trust/state_test.cc — the persisted trust state round-trips exactly, keeps Istio's keys
// for the active signer, and a corrupted state is an error, never a silent reset.
#include <functional>
#include <nlohmann/json.hpp>

#include "tests/trust/trust_fixture.h"

namespace istioca::ca::trust {
namespace {

using namespace testing;

struct States {
  Root old_root{"old.example", 24h * 365, T0()};
  Root new_root{"new.example", 24h * 365, T0()};
  TrustState stable =
      StableState(old_root.cert.ToPem(), old_root.pem(), old_root.cert.NotAfter(), T0());
  TrustState prepared =
      Must(Prepare(RecordIssued(stable, T0() + 24h), new_root.pem(), new_root.cert.ToPem(),
                   {old_root.cert.ToPem()}, {}, T0() + 1h));
  TrustState active =
      Must(Activate(RecordPublished(prepared, prepared.bundle_generation, T0() + 2h), {T0() + 30h},
                    T0() + 25h, /*forced=*/false));
};

TEST_CASE("the trust state round-trips in every stage", "[trust][state]") {
  States s;
  for (const TrustState* state : {&s.stable, &s.prepared, &s.active}) {
    INFO(StageName(state->stage));
    StateMap map = SerializeTrustState(*state);
    TrustState back = Must(ParseTrustState(map));
    CHECK(back == *state);
    CHECK(SerializeTrustState(back) == map);
  }
}

TEST_CASE("the active signer keeps Istio's istio-ca-secret keys", "[trust][state]") {
  States s;
  StateMap prepared = SerializeTrustState(s.prepared);
  CHECK(prepared.at(kCaCertKey) == s.old_root.cert.ToPem());
  CHECK(prepared.at(kCaKeyKey) == Must(s.old_root.key.ToPem()).str());
  CHECK(prepared.at(kNextCertKey) == s.new_root.cert.ToPem());
  CHECK(prepared.count(kPreviousCertKey) == 0);
  StateMap active = SerializeTrustState(s.active);
  CHECK(active.at(kCaCertKey) == s.new_root.cert.ToPem());
  CHECK(active.at(kPreviousCertKey) == s.old_root.cert.ToPem());
  CHECK(active.at(kPreviousKeyKey) == Must(s.old_root.key.ToPem()).str());
  CHECK(active.count(kNextCertKey) == 0);
  auto j = nlohmann::json::parse(active.at(kStateKey));
  CHECK(j["version"] == kStateFormatVersion);
  CHECK(j["stage"] == "active");
}

TEST_CASE("a CA stored before the trust lifecycle has no state: NotFound", "[trust][state]") {
  States s;
  StateMap map = SerializeTrustState(s.stable);
  map.erase(kStateKey);
  auto r = ParseTrustState(map);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
}

TEST_CASE("a corrupted trust state is an error, not a reset", "[trust][state]") {
  States s;
  using Mutation = std::function<void(StateMap&)>;
  auto json_edit = [](std::function<void(nlohmann::json&)> f) {
    return Mutation([f](StateMap& m) {
      auto j = nlohmann::json::parse(m.at(kStateKey));
      f(j);
      m[kStateKey] = j.dump();
    });
  };
  struct Row {
    const char* name;
    Mutation mutate;
    const char* expect;
  };
  auto row = GENERATE_COPY(values<Row>({
      {"truncated JSON", [](StateMap& m) { m[kStateKey].resize(m[kStateKey].size() / 2); },
       "not valid JSON"},
      {"not an object", [](StateMap& m) { m[kStateKey] = "[1]"; }, "not a JSON object"},
      {"future version", json_edit([](auto& j) { j["version"] = 2; }), "unsupported version 2"},
      {"unknown stage", json_edit([](auto& j) { j["stage"] = "activ"; }), "unknown stage"},
      {"missing instant", json_edit([](auto& j) { j.erase("previous_signer_until_unix_micros"); }),
       "missing field previous_signer_until_unix_micros"},
      {"instant as text", json_edit([](auto& j) { j["published_at_unix_micros"] = "soon"; }),
       "not an integer"},
      {"no roots", json_edit([](auto& j) { j["roots"] = nlohmann::json::array(); }), "no roots"},
      {"garbage root", json_edit([](auto& j) { j["roots"][0]["cert_pem"] = "junk"; }), "roots"},
      {"generation zero", json_edit([](auto& j) { j["bundle_generation"] = 0; }),
       "bundle_generation 0"},
      {"active signer key lost", [](StateMap& m) { m.erase(kCaKeyKey); },
       "ca-cert.pem without ca-key.pem"},
      {"previous signer lost",
       [](StateMap& m) {
         m.erase(kPreviousCertKey);
         m.erase(kPreviousKeyKey);
       },
       "stage active without previous-ca-cert.pem"},
      {"previous key garbage",
       [](StateMap& m) { m[kPreviousKeyKey] = "-----BEGIN PRIVATE KEY-----\nxx\n"; },
       "not a PEM private key"},
      {"rule-3 instant lost",
       json_edit([](auto& j) { j["previous_signer_until_unix_micros"] = nullptr; }),
       "rule-3 instant"},
      {"stable with leftovers", json_edit([](auto& j) { j["stage"] = "stable"; }),
       "stable with a next or previous signer"},
  }));
  INFO(row.name);
  StateMap map = SerializeTrustState(s.active);
  row.mutate(map);
  auto r = ParseTrustState(map);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Matchers::Contains(row.expect));
  CHECK_THAT(r.status().message(), !Catch::Matchers::Contains("BEGIN"));
}

}  // namespace
}  // namespace istioca::ca::trust
