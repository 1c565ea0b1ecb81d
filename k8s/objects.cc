#include "k8s/objects.h"

#include <cstdio>
#include <cstring>
#include <ctime>

#include "base/base64.h"
#include "base/secret.h"
#include "k8s/errors.h"

namespace istioca::k8s {
namespace {

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::map<std::string, std::string> StringMap(const Json& j, const char* key) {
  std::map<std::string, std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return out;
  for (auto& [k, v] : it->items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

std::optional<TimePoint> OptionalTime(const Json& j, const char* key) {
  std::string s = Str(j, key);
  if (s.empty()) return std::nullopt;
  auto t = ParseMicroTime(s);
  if (!t.ok()) return std::nullopt;
  return *t;
}

// Sets `values` in the string map `map` (made an object if it was not), keeping its other keys.
bool SetStrings(Json& map, const std::map<std::string, std::string>& values) {
  if (!map.is_object()) map = Json::object();
  bool changed = false;
  for (const auto& [k, v] : values) {
    auto it = map.find(k);
    if (it != map.end() && it->is_string() && it->get<std::string>() == v) continue;
    map[k] = v;
    changed = true;
  }
  return changed;
}

}  // namespace

Result<TimePoint> ParseMicroTime(const std::string& s) {
  auto t = ParseRfc3339(s);
  if (!t.ok()) return t.status();
  TimePoint out = std::chrono::floor<std::chrono::seconds>(*t);
  if (auto dot = s.find('.'); dot != std::string::npos) {
    int64_t us = 0;
    int digits = 0;
    for (size_t i = dot + 1; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
      if (digits < 6) {
        us = us * 10 + (s[i] - '0');
        ++digits;
      }
    }
    for (; digits < 6; ++digits) us *= 10;
    out += std::chrono::microseconds(us);
  }
  return out;
}

std::string FormatMicroTime(TimePoint t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  long frac = static_cast<long>(us % 1000000);
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

ObjectMeta MetaFromJson(const Json& object) {
  ObjectMeta m;
  auto it = object.find("metadata");
  if (it == object.end() || !it->is_object()) return m;
  const Json& md = *it;
  m.name = Str(md, "name");
  m.ns = Str(md, "namespace");
  m.uid = Str(md, "uid");
  m.resource_version = Str(md, "resourceVersion");
  m.labels = StringMap(md, "labels");
  m.annotations = StringMap(md, "annotations");
  m.deleting = md.contains("deletionTimestamp") && !md["deletionTimestamp"].is_null();
  return m;
}

Json MetaToJson(const ObjectMeta& m) {
  Json md = Json::object();
  md["name"] = m.name;
  if (!m.ns.empty()) md["namespace"] = m.ns;
  if (!m.uid.empty()) md["uid"] = m.uid;
  if (!m.resource_version.empty()) md["resourceVersion"] = m.resource_version;
  if (!m.labels.empty()) md["labels"] = m.labels;
  if (!m.annotations.empty()) md["annotations"] = m.annotations;
  return md;
}

void CleanseJson(Json& j) {
  if (j.is_string()) {
    std::string& v = j.get_ref<std::string&>();
    Cleanse(v.data(), v.size());
  } else if (j.is_structured()) {
    for (Json& child : j) CleanseJson(child);
  }
}

Result<Secret> SecretFromJson(const Json& object) {
  Secret s;
  s.meta = MetaFromJson(object);
  s.type = Str(object, "type");
  if (s.type.empty()) s.type = "Opaque";
  auto it = object.find("data");
  if (it != object.end() && it->is_object()) {
    for (auto& [k, v] : it->items()) {
      if (!v.is_string())
        return InvalidArgument("secret " + s.meta.ns + "/" + s.meta.name +
                               ": data is not a string");
      auto bytes = Base64Decode(v.get<std::string>());
      if (!bytes.ok()) {
        return InvalidArgument("secret " + s.meta.ns + "/" + s.meta.name + ": data key " + k +
                               " is not base64");
      }
      s.data[k] = std::move(bytes).value();
    }
  }
  return s;
}

Json SecretToJson(const Secret& s) {
  Json j{{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", MetaToJson(s.meta)}};
  if (!s.type.empty()) j["type"] = s.type;
  Json data = Json::object();
  for (const auto& [k, v] : s.data) data[k] = Base64Encode(v);
  j["data"] = std::move(data);
  return j;
}

ServiceAccount ServiceAccountFromJson(const Json& object) { return {MetaFromJson(object)}; }

ConfigMap ConfigMapFromJson(const Json& object) {
  return {MetaFromJson(object), StringMap(object, "data")};
}

Json ConfigMapToJson(const ConfigMap& c) {
  return Json{{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", MetaToJson(c.meta)},
              {"data", c.data}};
}

Namespace NamespaceFromJson(const Json& object) {
  Namespace n{MetaFromJson(object), ""};
  auto it = object.find("status");
  if (it != object.end() && it->is_object()) n.phase = Str(*it, "phase");
  return n;
}

bool SetConfigMapData(Json& object, const std::map<std::string, std::string>& data) {
  return SetStrings(object["data"], data);
}

bool SetLabels(Json& object, const std::map<std::string, std::string>& labels) {
  Json& md = object["metadata"];
  if (!md.is_object()) md = Json::object();
  return SetStrings(md["labels"], labels);
}

Result<Lease> LeaseFromJson(const Json& object) {
  Lease l;
  l.meta = MetaFromJson(object);
  auto it = object.find("spec");
  if (it != object.end() && it->is_object()) {
    const Json& spec = *it;
    l.holder = Str(spec, "holderIdentity");
    if (spec.contains("leaseDurationSeconds") && spec["leaseDurationSeconds"].is_number_integer()) {
      l.duration_seconds = spec["leaseDurationSeconds"];
    }
    if (spec.contains("leaseTransitions") && spec["leaseTransitions"].is_number_integer()) {
      l.transitions = spec["leaseTransitions"];
    }
    l.acquire_time = OptionalTime(spec, "acquireTime");
    l.renew_time = OptionalTime(spec, "renewTime");
  }
  return l;
}

Json LeaseToJson(const Lease& l) {
  Json spec = Json::object();
  if (!l.holder.empty()) spec["holderIdentity"] = l.holder;
  spec["leaseDurationSeconds"] = l.duration_seconds;
  if (l.acquire_time) spec["acquireTime"] = FormatMicroTime(*l.acquire_time);
  if (l.renew_time) spec["renewTime"] = FormatMicroTime(*l.renew_time);
  spec["leaseTransitions"] = l.transitions;
  return Json{{"apiVersion", "coordination.k8s.io/v1"},
              {"kind", "Lease"},
              {"metadata", MetaToJson(l.meta)},
              {"spec", std::move(spec)}};
}

// Secrets carry keys: the JSON on either side of a call is wiped once it is decoded or sent.
namespace {
Result<Secret> DecodeAndWipe(Json& j) {
  Result<Secret> s = SecretFromJson(j);
  CleanseJson(j);
  return s;
}
}  // namespace

Result<Secret> GetSecret(Api& api, const std::string& ns, const std::string& name) {
  ASSIGN_OR_RETURN(Json j, api.Get(kSecrets, ns, name));
  return DecodeAndWipe(j);
}

Result<Secret> CreateSecret(Api& api, const Secret& secret) {
  Secret s = secret;
  s.meta.resource_version.clear();  // a create with an RV is a 500 (sample 028)
  s.meta.uid.clear();
  Json body = SecretToJson(s);
  for (auto& [k, v] : s.data) Cleanse(v.data(), v.size());
  Result<Json> j = api.Create(kSecrets, s.meta.ns, body);
  CleanseJson(body);
  if (!j.ok()) return j.status();
  return DecodeAndWipe(*j);
}

Result<Secret> UpdateSecret(Api& api, const Secret& secret) {
  Json body = SecretToJson(secret);
  Result<Json> j = api.Update(kSecrets, secret.meta.ns, body);
  CleanseJson(body);
  if (!j.ok()) return j.status();
  return DecodeAndWipe(*j);
}

Status DeleteSecret(Api& api, const std::string& ns, const std::string& name,
                    const std::string& precondition_rv) {
  return api.Delete(kSecrets, ns, name, precondition_rv);
}

Result<std::vector<Secret>> ListSecrets(Api& api, const std::string& ns,
                                        const std::string& field_selector) {
  ListOptions o;
  o.field_selector = field_selector;
  o.limit = 500;
  ASSIGN_OR_RETURN(ListPage page, ListAll(api, kSecrets, ns, o));
  std::vector<Secret> out;
  out.reserve(page.items.size());
  for (auto& item : page.items) {
    ASSIGN_OR_RETURN(Secret s, DecodeAndWipe(item));
    out.push_back(std::move(s));
  }
  return out;
}

Result<ServiceAccount> GetServiceAccount(Api& api, const std::string& ns, const std::string& name) {
  ASSIGN_OR_RETURN(Json j, api.Get(kServiceAccounts, ns, name));
  return ServiceAccountFromJson(j);
}

Result<std::vector<ServiceAccount>> ListServiceAccounts(Api& api, const std::string& ns) {
  ListOptions o;
  o.limit = 500;
  ASSIGN_OR_RETURN(ListPage page, ListAll(api, kServiceAccounts, ns, o));
  std::vector<ServiceAccount> out;
  out.reserve(page.items.size());
  for (const auto& item : page.items) out.push_back(ServiceAccountFromJson(item));
  return out;
}

Result<ConfigMap> GetConfigMap(Api& api, const std::string& ns, const std::string& name) {
  ASSIGN_OR_RETURN(Json j, api.Get(kConfigMaps, ns, name));
  return ConfigMapFromJson(j);
}

Result<ConfigMap> CreateConfigMap(Api& api, const ConfigMap& config_map) {
  ConfigMap c = config_map;
  c.meta.resource_version.clear();  // a create with an RV is a 500 (sample 028)
  c.meta.uid.clear();
  ASSIGN_OR_RETURN(Json j, api.Create(kConfigMaps, c.meta.ns, ConfigMapToJson(c)));
  return ConfigMapFromJson(j);
}

Result<ConfigMap> UpdateConfigMap(Api& api, const ConfigMap& config_map) {
  ASSIGN_OR_RETURN(Json j,
                   api.Update(kConfigMaps, config_map.meta.ns, ConfigMapToJson(config_map)));
  return ConfigMapFromJson(j);
}

Status DeleteConfigMap(Api& api, const std::string& ns, const std::string& name) {
  return api.Delete(kConfigMaps, ns, name);
}

Result<Lease> GetLease(Api& api, const std::string& ns, const std::string& name) {
  ASSIGN_OR_RETURN(Json j, api.Get(kLeases, ns, name));
  return LeaseFromJson(j);
}

Result<Lease> CreateLease(Api& api, const Lease& lease) {
  Lease l = lease;
  l.meta.resource_version.clear();
  ASSIGN_OR_RETURN(Json j, api.Create(kLeases, l.meta.ns, LeaseToJson(l)));
  return LeaseFromJson(j);
}

Result<Lease> UpdateLease(Api& api, const Lease& lease) {
  ASSIGN_OR_RETURN(Json j, api.Update(kLeases, lease.meta.ns, LeaseToJson(lease)));
  return LeaseFromJson(j);
}

}  // namespace istioca::k8s
