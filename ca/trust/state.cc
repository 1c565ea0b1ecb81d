// ca/trust/state.cc — TrustState ⇄ flat string map (trust-state.json plus PEM keys).
#include "ca/trust/state.h"

#include <nlohmann/json.hpp>

#include "pki/cert.h"
#include "pki/key.h"

namespace istioca::ca::trust {
namespace {

using Json = nlohmann::json;

// Instants are stored as integer microseconds since the epoch: exact for every TimePoint the CA
// records (certificate times are whole seconds; the clock's are microseconds), so a resumed
// state decides exactly as the one that was written.
Json InstantToJson(const std::optional<TimePoint>& t) {
  if (!t) return nullptr;
  return std::chrono::duration_cast<std::chrono::microseconds>(t->time_since_epoch()).count();
}

Status Bad(const std::string& what) {
  return InvalidArgument("corrupt trust state: " + what +
                         " (refusing to start from a guessed state; fix or restore the storage)");
}

Result<std::optional<TimePoint>> InstantFromJson(const Json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end()) return Bad(std::string(kStateKey) + ": missing field " + field);
  if (it->is_null()) return std::optional<TimePoint>();
  if (!it->is_number_integer())
    return Bad(std::string(kStateKey) + ": " + field + " is not an integer");
  return std::optional<TimePoint>(TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::microseconds(it->get<int64_t>()))));
}

Status CheckCertPem(const std::string& key, const std::string& pem) {
  auto certs = pki::Certificate::ParsePemChain(pem);
  if (!certs.ok()) return Bad(key + ": " + certs.status().message());
  return OkStatus();
}

// Reads one signer's three keys. Absent certificate and key: no signer. One without the other is
// corrupt.
Result<std::optional<SignerPem>> ReadSigner(const StateMap& data, const char* cert_key,
                                            const char* key_key, const char* chain_key) {
  auto cert = data.find(cert_key);
  auto key = data.find(key_key);
  auto chain = data.find(chain_key);
  if (cert == data.end() && key == data.end()) {
    if (chain != data.end()) return Bad(std::string(chain_key) + " without " + cert_key);
    return std::optional<SignerPem>();
  }
  if (cert == data.end()) return Bad(std::string(key_key) + " without " + cert_key);
  if (key == data.end()) return Bad(std::string(cert_key) + " without " + key_key);
  RETURN_IF_ERROR(CheckCertPem(cert_key, cert->second));
  if (!pki::PrivateKey::FromPem(key->second).ok()) {
    return Bad(std::string(key_key) + " is not a PEM private key");  // never echo key bytes
  }
  SignerPem s{cert->second, key->second, ""};
  if (chain != data.end()) {
    RETURN_IF_ERROR(CheckCertPem(chain_key, chain->second));
    s.chain_pem = chain->second;
  }
  return std::optional<SignerPem>(std::move(s));
}

void WriteSigner(StateMap& out, const SignerPem& s, const char* cert_key, const char* key_key,
                 const char* chain_key) {
  out[cert_key] = s.cert_pem;
  out[key_key] = s.key_pem;
  if (!s.chain_pem.empty()) out[chain_key] = s.chain_pem;
}

}  // namespace

const char* StageName(Stage stage) {
  switch (stage) {
    case Stage::kStable: return "stable";
    case Stage::kPrepared: return "prepared";
    case Stage::kActive: return "active";
  }
  return "unknown";
}

std::optional<Stage> ParseStage(std::string_view name) {
  for (Stage s : {Stage::kStable, Stage::kPrepared, Stage::kActive}) {
    if (name == StageName(s)) return s;
  }
  return std::nullopt;
}

StateMap SerializeTrustState(const TrustState& state) {
  StateMap out;
  WriteSigner(out, state.active, kCaCertKey, kCaKeyKey, kCaChainKey);
  if (state.next) WriteSigner(out, *state.next, kNextCertKey, kNextKeyKey, kNextChainKey);
  if (state.previous) {
    WriteSigner(out, *state.previous, kPreviousCertKey, kPreviousKeyKey, kPreviousChainKey);
  }
  Json roots = Json::array();
  for (const RootEntry& r : state.roots) {
    roots.push_back({{"cert_pem", r.cert_pem},
                     {"retire_after_unix_micros", InstantToJson(r.retire_after)},
                     {"leaving", r.leaving}});
  }
  Json j = {
      {"version", kStateFormatVersion},
      {"stage", StageName(state.stage)},
      {"bundle_generation", state.bundle_generation},
      {"roots", roots},
      {"next_root_pem", state.next_root_pem},
      {"latest_issued_not_after_unix_micros", InstantToJson(state.latest_issued_not_after)},
      {"active_signer_not_after_unix_micros", InstantToJson(state.active_signer_not_after)},
      {"without_next_root_until_unix_micros", InstantToJson(state.without_next_root_until)},
      {"previous_signer_until_unix_micros", InstantToJson(state.previous_signer_until)},
      {"published_generation", state.published_generation},
      {"published_at_unix_micros", InstantToJson(state.published_at)},
      {"stage_entered_at_unix_micros", InstantToJson(state.stage_entered_at)},
      {"forced_activation", state.forced_activation},
  };
  out[kStateKey] = j.dump(2) + "\n";
  return out;
}

Result<TrustState> ParseTrustState(const StateMap& data) {
  auto doc = data.find(kStateKey);
  if (doc == data.end()) return NotFound(std::string("no ") + kStateKey);
  Json j = Json::parse(doc->second, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad(std::string(kStateKey) + " is not valid JSON");
  if (!j.is_object()) return Bad(std::string(kStateKey) + " is not a JSON object");
  auto field = [&](const char* name) -> const Json* {
    auto it = j.find(name);
    return it == j.end() ? nullptr : &*it;
  };
  const std::string where = std::string(kStateKey) + ": ";

  const Json* version = field("version");
  if (!version || !version->is_number_integer()) return Bad(where + "missing integer version");
  if (version->get<int64_t>() != kStateFormatVersion) {
    return Bad(where + "unsupported version " + std::to_string(version->get<int64_t>()) +
               " (this binary reads version " + std::to_string(kStateFormatVersion) + ")");
  }
  TrustState s;
  const Json* stage = field("stage");
  if (!stage || !stage->is_string()) return Bad(where + "missing stage");
  auto parsed_stage = ParseStage(stage->get<std::string>());
  if (!parsed_stage) return Bad(where + "unknown stage \"" + stage->get<std::string>() + "\"");
  s.stage = *parsed_stage;

  for (auto [name, out] : {std::pair{"bundle_generation", &s.bundle_generation},
                           std::pair{"published_generation", &s.published_generation}}) {
    const Json* v = field(name);
    if (!v || !v->is_number_unsigned()) return Bad(where + "missing unsigned " + name);
    *out = v->get<uint64_t>();
  }
  if (s.bundle_generation == 0) return Bad(where + "bundle_generation 0");
  const Json* forced = field("forced_activation");
  if (!forced || !forced->is_boolean()) return Bad(where + "missing boolean forced_activation");
  s.forced_activation = forced->get<bool>();
  const Json* next_root = field("next_root_pem");
  if (!next_root || !next_root->is_string()) return Bad(where + "missing next_root_pem");
  s.next_root_pem = next_root->get<std::string>();

  struct InstantField {
    const char* name;
    std::optional<TimePoint>* out;
  };
  for (const InstantField& f : {
           InstantField{"latest_issued_not_after_unix_micros", &s.latest_issued_not_after},
           InstantField{"active_signer_not_after_unix_micros", &s.active_signer_not_after},
           InstantField{"without_next_root_until_unix_micros", &s.without_next_root_until},
           InstantField{"previous_signer_until_unix_micros", &s.previous_signer_until},
           InstantField{"published_at_unix_micros", &s.published_at},
           InstantField{"stage_entered_at_unix_micros", &s.stage_entered_at},
       }) {
    ASSIGN_OR_RETURN(*f.out, InstantFromJson(j, f.name));
  }

  const Json* roots = field("roots");
  if (!roots || !roots->is_array() || roots->empty()) return Bad(where + "no roots");
  for (const Json& r : *roots) {
    if (!r.is_object() || !r.contains("cert_pem") || !r["cert_pem"].is_string()) {
      return Bad(where + "a root without cert_pem");
    }
    if (!r.contains("leaving") || !r["leaving"].is_boolean()) {
      return Bad(where + "a root without boolean leaving");
    }
    RootEntry e{r["cert_pem"].get<std::string>(), std::nullopt, r["leaving"].get<bool>()};
    RETURN_IF_ERROR(CheckCertPem(where + "roots", e.cert_pem));
    ASSIGN_OR_RETURN(e.retire_after, InstantFromJson(r, "retire_after_unix_micros"));
    s.roots.push_back(std::move(e));
  }

  ASSIGN_OR_RETURN(auto active, ReadSigner(data, kCaCertKey, kCaKeyKey, kCaChainKey));
  if (!active) return Bad(std::string("missing ") + kCaCertKey + " / " + kCaKeyKey);
  s.active = std::move(*active);
  ASSIGN_OR_RETURN(s.next, ReadSigner(data, kNextCertKey, kNextKeyKey, kNextChainKey));
  ASSIGN_OR_RETURN(s.previous,
                   ReadSigner(data, kPreviousCertKey, kPreviousKeyKey, kPreviousChainKey));

  // The stage and what it needs must agree: a half-written rotation is corrupt, not "stable".
  const bool next_root_in_bundle = [&] {
    for (const RootEntry& r : s.roots) {
      if (r.cert_pem == s.next_root_pem) return true;
    }
    return false;
  }();
  switch (s.stage) {
    case Stage::kStable:
      if (s.next || s.previous) return Bad("stage stable with a next or previous signer");
      break;
    case Stage::kPrepared:
      if (!s.next) return Bad(std::string("stage prepared without ") + kNextCertKey);
      if (s.previous) return Bad("stage prepared with a previous signer");
      if (s.next_root_pem.empty() || !next_root_in_bundle) {
        return Bad("stage prepared but the next root is not in the bundle");
      }
      if (!s.without_next_root_until) return Bad("stage prepared without its rule-2 instant");
      break;
    case Stage::kActive:
      if (!s.previous) return Bad(std::string("stage active without ") + kPreviousCertKey);
      if (s.next) return Bad("stage active with a next signer");
      if (!s.previous_signer_until) return Bad("stage active without its rule-3 instant");
      break;
  }
  return s;
}

}  // namespace istioca::ca::trust
