// k8s/objects.h — the few Kubernetes objects istio-ca uses, as structs, and typed operations
// over the Api. Only the fields istio-ca reads or writes are kept; converting back to JSON
// builds a fresh object (the server ignores absent managedFields and keeps what PUT omits only
// for status, which these kinds do not have).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/time.h"
#include "k8s/api.h"

namespace istioca::k8s {

struct ObjectMeta {
  std::string name;
  std::string ns;
  std::string uid;
  std::string resource_version;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  bool deleting = false;  // deletionTimestamp set
};

struct Secret {
  ObjectMeta meta;
  std::string type;                         // "Opaque" when absent
  std::map<std::string, std::string> data;  // decoded bytes, keyed by data key
};

struct ServiceAccount {
  ObjectMeta meta;
};

// A ConfigMap's text data (binaryData is not read; a merge through SetConfigMapData keeps it).
struct ConfigMap {
  ObjectMeta meta;
  std::map<std::string, std::string> data;
};

struct Namespace {
  ObjectMeta meta;
  std::string phase;  // "Active", "Terminating"; "" when the server did not say
  // Being deleted: no new content may be created in it (samples 086-088).
  bool terminating() const { return phase == "Terminating" || meta.deleting; }
};

// coordination.k8s.io/v1 Lease. Times are MicroTime on the wire (exactly 6 fraction digits).
struct Lease {
  ObjectMeta meta;
  std::string holder;
  int duration_seconds = 0;
  std::optional<TimePoint> acquire_time;
  std::optional<TimePoint> renew_time;
  int transitions = 0;
};

// "2026-11-29T14:30:45.417724Z"; the API server rejects any other precision (samples 077/078).
std::string FormatMicroTime(TimePoint t);
// RFC 3339 keeping the fraction to the microsecond.
Result<TimePoint> ParseMicroTime(const std::string& text);

ObjectMeta MetaFromJson(const Json& object);
Json MetaToJson(const ObjectMeta& meta);  // name, namespace, resourceVersion, labels, annotations

// Overwrites every string in `j` (a Secret's base64 data included) before it is freed.
void CleanseJson(Json& j);

Result<Secret> SecretFromJson(const Json& object);
Json SecretToJson(const Secret& secret);
ServiceAccount ServiceAccountFromJson(const Json& object);
Result<Lease> LeaseFromJson(const Json& object);
ConfigMap ConfigMapFromJson(const Json& object);
Json ConfigMapToJson(const ConfigMap& config_map);
Namespace NamespaceFromJson(const Json& object);

// Read-modify-write helpers on a whole object as read (so fields this file does not model,
// such as binaryData, ownerReferences or finalizers, survive the PUT). Each sets the given keys
// and keeps every other; returns whether a value changed.
bool SetConfigMapData(Json& object, const std::map<std::string, std::string>& data);
bool SetLabels(Json& object, const std::map<std::string, std::string>& labels);
Json LeaseToJson(const Lease& lease);

// Typed operations. Errors are those of errors.h (IsNotFound, IsConflict, ...).
Result<Secret> GetSecret(Api& api, const std::string& ns, const std::string& name);
Result<Secret> CreateSecret(Api& api, const Secret& secret);
// Conditional on secret.meta.resource_version when set.
Result<Secret> UpdateSecret(Api& api, const Secret& secret);
Status DeleteSecret(Api& api, const std::string& ns, const std::string& name,
                    const std::string& precondition_rv = "");
// Every secret in `ns` ("" = all namespaces) matching `field_selector`, all pages.
Result<std::vector<Secret>> ListSecrets(Api& api, const std::string& ns,
                                        const std::string& field_selector = "");

Result<ServiceAccount> GetServiceAccount(Api& api, const std::string& ns, const std::string& name);
Result<std::vector<ServiceAccount>> ListServiceAccounts(Api& api, const std::string& ns);

Result<ConfigMap> GetConfigMap(Api& api, const std::string& ns, const std::string& name);
Result<ConfigMap> CreateConfigMap(Api& api, const ConfigMap& config_map);
// Conditional on config_map.meta.resource_version when set. Replaces the whole object: to keep
// what others added, use UpdateWithRetry with SetConfigMapData/SetLabels instead.
Result<ConfigMap> UpdateConfigMap(Api& api, const ConfigMap& config_map);
Status DeleteConfigMap(Api& api, const std::string& ns, const std::string& name);

Result<Lease> GetLease(Api& api, const std::string& ns, const std::string& name);
Result<Lease> CreateLease(Api& api, const Lease& lease);
Result<Lease> UpdateLease(Api& api, const Lease& lease);

// The field selector for Istio's workload secrets.
inline constexpr const char* kIstioSecretSelector = "type=istio.io/key-and-cert";

}  // namespace istioca::k8s
