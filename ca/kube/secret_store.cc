#include "ca/kube/secret_store.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "k8s/errors.h"

namespace istioca::ca {
namespace {

std::optional<ServiceAccountKey> KeyOfSecretName(const std::string& ns, const std::string& name) {
  const std::string prefix = kSecretNamePrefix;
  if (name.size() <= prefix.size() || name.rfind(prefix, 0) != 0) return std::nullopt;
  return ServiceAccountKey{ns, name.substr(prefix.size())};
}

// SHA-256 of a workload key.pem: what the cache keeps instead of the key. Empty if hashing
// failed (never equal to anything, so an update is then written).
std::string KeyDigest(const std::string& pem) {
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  unsigned int len = 0;
  if (EVP_Digest(pem.data(), pem.size(), reinterpret_cast<unsigned char*>(digest.data()), &len,
                 EVP_sha256(), nullptr) != 1 ||
      len != digest.size()) {
    return "";
  }
  return digest;
}

// Overwrites the key.pem held in a secret object once it has been sent or looked at, so the
// copies that pass through here do not linger in freed memory. (The JSON text the client
// encodes and decodes is the k8s layer's, and not wiped here.)
void WipeKey(k8s::Secret& s) {
  auto it = s.data.find(kPrivateKeyKey);
  if (it != s.data.end()) Cleanse(it->second.data(), it->second.size());
}

}  // namespace

KubeSecretStore::KubeSecretStore(std::shared_ptr<k8s::Api> api, std::vector<std::string> namespaces,
                                 KubeInformerTuning tuning, std::shared_ptr<SyncGate> gate)
    : InformerCache(std::move(api), std::move(namespaces), k8s::kSecrets, k8s::kIstioSecretSelector,
                    tuning, std::move(gate)) {}

KubeSecretStore::~KubeSecretStore() { StopInformers(); }

void KubeSecretStore::OnUpsert(const k8s::Json& o) {
  auto s = k8s::SecretFromJson(o);
  if (!s.ok()) {
    // Undecodable data: keep an empty entry so the controller sees an unparsable secret
    // and refreshes it.
    k8s::Secret empty;
    empty.meta = k8s::MetaFromJson(o);
    s = empty;
  }
  auto key = KeyOfSecretName(s->meta.ns, s->meta.name);
  if (!key) return;
  const bool changed = Remember(*s);
  WipeKey(*s);
  if (changed) Notify(*key);
}

void KubeSecretStore::OnDelete(const std::string& ns, const std::string& name) {
  auto key = KeyOfSecretName(ns, name);
  if (!key) return;
  Forget(ns, name);
  Notify(*key);
}

std::vector<ServiceAccountKey> KubeSecretStore::CachedKeys() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ServiceAccountKey> keys;
  keys.reserve(cache_.size());
  for (const auto& [key, c] : cache_) keys.push_back(key);
  return keys;
}

bool KubeSecretStore::CacheContains(const std::string& bytes) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, c] : cache_) {
    for (const std::string* field : {&c.rv_text, &c.chain, &c.key_digest, c.root.get()}) {
      if (field != nullptr && field->find(bytes) != std::string::npos) return true;
    }
    for (const auto* m : {&c.labels, &c.annotations}) {
      for (const auto& [k, v] : *m) {
        if (k.find(bytes) != std::string::npos || v.find(bytes) != std::string::npos) return true;
      }
    }
  }
  return false;
}

size_t KubeSecretStore::cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.size();
}

bool KubeSecretStore::Remember(const k8s::Secret& s) {
  auto key = KeyOfSecretName(s.meta.ns, s.meta.name);
  if (!key || !InScope(s.meta.ns)) return false;
  uint64_t rv = ParseResourceVersion(s.meta.resource_version);
  auto get = [&](const char* k) {
    auto it = s.data.find(k);
    return it == s.data.end() ? std::string() : it->second;
  };
  std::string root = get(kRootCertKey);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(*key);
  if (it != cache_.end() && rv != 0 && it->second.rv >= rv) return false;  // older news
  if (!last_root_ || *last_root_ != root) last_root_ = std::make_shared<const std::string>(root);
  Cached& c = cache_[*key];
  c.rv = rv;
  c.rv_text = s.meta.resource_version;
  c.chain = get(kCertChainKey);
  auto key_pem = s.data.find(kPrivateKeyKey);
  c.key_digest = KeyDigest(key_pem == s.data.end() ? std::string() : key_pem->second);
  c.key_looks_valid = key_pem != s.data.end() && LooksLikePrivateKeyPem(key_pem->second);
  c.root = last_root_;
  c.labels = s.meta.labels;
  c.annotations = s.meta.annotations;
  return true;
}

void KubeSecretStore::Forget(const std::string& ns, const std::string& name) {
  auto key = KeyOfSecretName(ns, name);
  if (!key) return;
  std::lock_guard<std::mutex> lock(mu_);
  cache_.erase(*key);
}

Result<std::vector<ServiceAccountKey>> KubeSecretStore::List() const { return CachedKeys(); }

Result<WorkloadSecret> KubeSecretStore::Get(const ServiceAccountKey& key) const {
  if (!HasSynced()) {
    // Before the first list completes the cache may miss secrets that exist: ask the API.
    auto s = k8s::GetSecret(api(), key.ns, key.SecretName());
    if (!s.ok()) return s.status();
    if (s->type != kWorkloadSecretType)
      return NotFound("secret is not of type " + std::string(kWorkloadSecretType));
    auto take = [&](const char* k) {
      auto it = s->data.find(k);
      return it == s->data.end() ? std::string() : std::move(it->second);
    };
    return WorkloadSecret{take(kCertChainKey), SecretString(take(kPrivateKeyKey)),
                          take(kRootCertKey), s->meta.resource_version};
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end())
    return NotFound("secret " + key.ns + "/" + key.SecretName() + " not found");
  const Cached& c = it->second;
  WorkloadSecret out{c.chain, SecretString(), c.root ? *c.root : std::string(), c.rv_text};
  out.stored_key_looks_valid = c.key_looks_valid;
  return out;
}

k8s::Secret KubeSecretStore::BuildSecret(const ServiceAccountKey& key,
                                         const WorkloadSecret& secret) {
  k8s::Secret s;
  s.meta.name = key.SecretName();
  s.meta.ns = key.ns;
  s.meta.annotations[kServiceAccountAnnotation] = key.name;
  s.type = kWorkloadSecretType;
  s.data[kCertChainKey] = secret.cert_chain_pem;
  s.data[kPrivateKeyKey] = secret.key_pem.str();  // wiped by the caller once sent
  s.data[kRootCertKey] = secret.root_cert_pem;
  return s;
}

Status KubeSecretStore::Create(const ServiceAccountKey& key, const WorkloadSecret& secret) {
  ++writes_;
  k8s::Secret s = BuildSecret(key, secret);
  auto created = k8s::CreateSecret(api(), s);
  WipeKey(s);
  if (created.ok()) {
    Remember(*created);
    WipeKey(*created);
    return OkStatus();
  }
  if (k8s::IsAlreadyExists(created.status())) {
    // Our cache is behind (or another replica won): read it so the controller's next look
    // sees what is there instead of trying to create again.
    RememberCurrent(key);
  }
  return created.status();
}

Status KubeSecretStore::Update(const ServiceAccountKey& key, const WorkloadSecret& secret) {
  k8s::Secret s = BuildSecret(key, secret);
  s.meta.resource_version = secret.version;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      const Cached& c = it->second;
      if (c.rv_text == secret.version && c.chain == secret.cert_chain_pem &&
          !c.key_digest.empty() && c.key_digest == KeyDigest(secret.key_pem.str()) && c.root &&
          *c.root == secret.root_cert_pem) {
        WipeKey(s);
        return OkStatus();  // nothing would change: no write
      }
      // Keep labels and extra annotations others put on the secret.
      for (const auto& [k, v] : c.labels) s.meta.labels.emplace(k, v);
      for (const auto& [k, v] : c.annotations) s.meta.annotations.emplace(k, v);
    }
  }
  ++writes_;
  auto updated = k8s::UpdateSecret(api(), s);
  WipeKey(s);
  if (updated.ok()) {
    Remember(*updated);
    WipeKey(*updated);
    return OkStatus();
  }
  if (k8s::IsConflict(updated.status())) RememberCurrent(key);
  return updated.status();
}

void KubeSecretStore::RememberCurrent(const ServiceAccountKey& key) {
  auto current = k8s::GetSecret(api(), key.ns, key.SecretName());
  if (!current.ok()) return;
  Remember(*current);
  WipeKey(*current);
}

Status KubeSecretStore::Delete(const ServiceAccountKey& key) {
  Status s = k8s::DeleteSecret(api(), key.ns, key.SecretName());
  if (s.ok() || k8s::IsNotFound(s)) Forget(key.ns, key.SecretName());
  return s;
}

}  // namespace istioca::ca
