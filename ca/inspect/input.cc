#include "ca/inspect/input.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "pki/key.h"
#include "pki/pem.h"

namespace istioca::ca {
namespace {

std::string Basename(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string_view TrimLeft(std::string_view s) {
  while (!s.empty() && (s[0] == ' ' || s[0] == '\n' || s[0] == '\r' || s[0] == '\t'))
    s.remove_prefix(1);
  return s;
}

// Certificates and keys from PEM text. CSRs and unknown blocks are errors.
Status AddPem(std::string_view text, const std::string& what, bool as_roots, MaterialSet* set) {
  auto blocks = pki::ParsePem(text);
  if (!blocks.ok()) return blocks.status().WithContext(what);
  for (const pki::PemBlock& block : *blocks) {
    const std::string at =
        what + ": PEM block " + block.type + " at line " + std::to_string(block.line);
    if (block.type == "CERTIFICATE") {
      auto cert = pki::Certificate::FromDer(block.der);
      if (!cert.ok())
        return Status(cert.status().code(), at + ": " + cert.status().message(),
                      cert.status().detail());
      (as_roots ? set->roots : set->chain).push_back(std::move(cert).value());
    } else if (block.type == "CERTIFICATE REQUEST" || block.type == "NEW CERTIFICATE REQUEST") {
      return InvalidArgument(what + ": this is a certificate signing request (line " +
                             std::to_string(block.line) + "), not a certificate");
    } else if (block.type.find("PRIVATE KEY") != std::string::npos) {
      if (set->key.has_value()) return InvalidArgument(what + ": more than one private key");
      // Re-encode the single block so that FromPem sees exactly it.
      auto key = pki::PrivateKey::FromPem(pki::EncodePem(block.type, block.der));
      if (!key.ok()) return InvalidArgument(at + ": " + key.status().message());
      set->key = std::move(key).value();
    } else if (block.type == "EC PARAMETERS") {
      continue;
    } else {
      return InvalidArgument(at + ": unsupported block type");
    }
  }
  return OkStatus();
}

// The data of one Secret, keys to decoded values.
using SecretData = std::map<std::string, std::string>;

}  // namespace

Result<MaterialSet> MaterialFromSecret(const std::string& ns, const std::string& name,
                                       const std::string& type,
                                       const std::map<std::string, std::string>& data) {
  MaterialSet set;
  set.kind = "secret";
  set.source = "secret " + (ns.empty() ? name : ns + "/" + name);
  if (!type.empty()) set.notes.push_back("type " + type);
  auto get = [&](const char* key) -> const std::string* {
    auto it = data.find(key);
    return it == data.end() || it->second.empty() ? nullptr : &it->second;
  };
  // Istio workload secret, Istio CA secret / cacerts, or kubernetes.io/tls.
  const std::string* chain = get("cert-chain.pem");
  const std::string* ca_cert = get("ca-cert.pem");
  const std::string* tls_crt = get("tls.crt");
  if (ca_cert != nullptr) {
    RETURN_IF_ERROR(AddPem(*ca_cert, set.source + " ca-cert.pem", false, &set));
    // In a CA secret, cert-chain.pem is the CA's chain above ca-cert.pem; skip a repeated CA cert.
    if (chain != nullptr) {
      MaterialSet extra;
      RETURN_IF_ERROR(AddPem(*chain, set.source + " cert-chain.pem", false, &extra));
      for (auto& c : extra.chain) {
        if (!(c == set.chain.front())) set.chain.push_back(std::move(c));
      }
    }
  } else if (chain != nullptr) {
    RETURN_IF_ERROR(AddPem(*chain, set.source + " cert-chain.pem", false, &set));
  } else if (tls_crt != nullptr) {
    RETURN_IF_ERROR(AddPem(*tls_crt, set.source + " tls.crt", false, &set));
  } else {
    return InvalidArgument(set.source + ": has none of cert-chain.pem, ca-cert.pem or tls.crt");
  }
  for (const char* key_name : {"key.pem", "ca-key.pem", "tls.key"}) {
    if (const std::string* key = get(key_name)) {
      auto parsed = pki::PrivateKey::FromPem(*key);
      if (!parsed.ok()) return parsed.status().WithContext(set.source + " " + key_name);
      set.key = std::move(parsed).value();
      break;
    }
  }
  for (const char* roots_name : {"root-cert.pem", "ca.crt"}) {
    if (const std::string* roots = get(roots_name)) {
      RETURN_IF_ERROR(AddPem(*roots, set.source + " " + roots_name, true, &set));
      set.roots_name = roots_name;
      break;
    }
  }
  return set;
}

namespace {

Result<SecretData> DecodeData(const std::map<std::string, std::string>& raw,
                              const std::string& what) {
  SecretData out;
  for (const auto& [k, v] : raw) {
    auto decoded = Base64Decode(v, {.ignore_whitespace = true});
    if (!decoded.ok()) return InvalidArgument(what + ": data[" + k + "] is not valid base64");
    out[k] = std::move(decoded).value();
  }
  return out;
}

Result<std::vector<MaterialSet>> FromJson(std::string_view bytes, const std::string& source) {
  nlohmann::json doc = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (doc.is_discarded()) return InvalidArgument(source + ": not valid JSON");
  if (!doc.is_object()) return InvalidArgument(source + ": expected a Kubernetes Secret object");
  std::vector<nlohmann::json> items;
  const std::string kind = doc.value("kind", "");
  if (kind == "List" || kind == "SecretList") {
    if (!doc.contains("items") || !doc["items"].is_array())
      return InvalidArgument(source + ": List without items");
    for (auto& item : doc["items"]) items.push_back(item);
  } else if (kind == "Secret") {
    items.push_back(doc);
  } else {
    return InvalidArgument(source + ": expected kind Secret or List, found \"" + kind + "\"");
  }
  std::vector<MaterialSet> sets;
  for (const auto& item : items) {
    if (!item.is_object() || item.value("kind", "Secret") != "Secret") continue;
    const auto& meta = item.contains("metadata") && item["metadata"].is_object()
                           ? item["metadata"]
                           : nlohmann::json::object();
    const std::string name = meta.value("name", "");
    const std::string ns = meta.value("namespace", "");
    std::map<std::string, std::string> raw;
    if (item.contains("data") && item["data"].is_object()) {
      for (const auto& [k, v] : item["data"].items()) {
        if (!v.is_string()) return InvalidArgument(source + ": data[" + k + "] is not a string");
        raw[k] = v.get<std::string>();
      }
    }
    ASSIGN_OR_RETURN(SecretData data, DecodeData(raw, source + " secret " + name));
    const std::string type =
        item.contains("type") && item["type"].is_string() ? item["type"].get<std::string>() : "";
    ASSIGN_OR_RETURN(MaterialSet set, MaterialFromSecret(ns, name, type, data));
    sets.push_back(std::move(set));
  }
  if (sets.empty()) return InvalidArgument(source + ": the List has no Secrets");
  return sets;
}

Result<std::vector<MaterialSet>> FromYaml(std::string_view bytes, const std::string& source) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(bytes));
  } catch (const std::exception& e) {
    return InvalidArgument(source + ": not valid YAML", e.what());
  }
  std::vector<MaterialSet> sets;
  try {
    std::vector<YAML::Node> items;
    for (const YAML::Node& doc : docs) {
      if (!doc.IsMap()) continue;
      const std::string kind = doc["kind"] ? doc["kind"].as<std::string>("") : "";
      if ((kind == "List" || kind == "SecretList") && doc["items"] && doc["items"].IsSequence()) {
        for (const auto& item : doc["items"]) items.push_back(item);
      } else if (kind == "Secret") {
        items.push_back(doc);
      }
    }
    for (const YAML::Node& item : items) {
      if (!item.IsMap()) continue;
      std::string name, ns, type;
      if (item["metadata"] && item["metadata"].IsMap()) {
        name = item["metadata"]["name"] ? item["metadata"]["name"].as<std::string>("") : "";
        ns = item["metadata"]["namespace"] ? item["metadata"]["namespace"].as<std::string>("") : "";
      }
      if (item["type"]) type = item["type"].as<std::string>("");
      std::map<std::string, std::string> raw;
      if (item["data"] && item["data"].IsMap()) {
        for (const auto& kv : item["data"])
          raw[kv.first.as<std::string>("")] = kv.second.as<std::string>("");
      }
      ASSIGN_OR_RETURN(SecretData data, DecodeData(raw, source + " secret " + name));
      ASSIGN_OR_RETURN(MaterialSet set, MaterialFromSecret(ns, name, type, data));
      sets.push_back(std::move(set));
    }
  } catch (const std::exception& e) {
    return InvalidArgument(source + ": unexpected Secret structure", e.what());
  }
  if (sets.empty()) return InvalidArgument(source + ": YAML without a Kubernetes Secret");
  return sets;
}

}  // namespace

Result<std::string> ReadInput(const std::string& path, size_t max_bytes) {
  const bool is_stdin = path == "-";
  std::ifstream file;
  std::istream* in = &std::cin;
  if (!is_stdin) {
    if (!FileExists(path)) return NotFound(path + ": no such file or directory");
    file.open(path, std::ios::binary);
    if (!file) return InvalidArgument(path + ": cannot read (" + std::strerror(errno) + ")");
    in = &file;
  }
  std::string data;
  char buf[65536];
  while (in->read(buf, sizeof buf) || in->gcount() > 0) {
    data.append(buf, static_cast<size_t>(in->gcount()));
    if (data.size() > max_bytes) {
      return InvalidArgument((is_stdin ? std::string("standard input") : path) + ": larger than " +
                             std::to_string(max_bytes / (1024 * 1024)) +
                             " MiB; not certificate material");
    }
  }
  if (!is_stdin && file.bad()) return InvalidArgument(path + ": read error");
  if (data.empty())
    return InvalidArgument((is_stdin ? std::string("standard input") : path) + " is empty");
  return data;
}

Result<std::vector<MaterialSet>> ParseMaterial(std::string_view bytes, const std::string& source,
                                               const std::string& kind) {
  const std::string_view body = TrimLeft(bytes);
  if (bytes.find("-----BEGIN ") != std::string_view::npos) {
    MaterialSet set;
    set.source = source;
    set.kind = kind;
    RETURN_IF_ERROR(AddPem(bytes, source, false, &set));
    if (set.chain.empty()) return InvalidArgument(source + ": no certificate (only a private key)");
    return std::vector<MaterialSet>{std::move(set)};
  }
  if (!body.empty() && body[0] == '{') return FromJson(body, source);
  if (body.find("apiVersion:") != std::string_view::npos ||
      body.find("kind:") != std::string_view::npos) {
    return FromYaml(body, source);
  }
  if (pki::LooksLikeDer(bytes)) {
    return InvalidArgument(
        source + ": looks like DER, not PEM (convert it: openssl x509 -inform der -in FILE)");
  }
  return InvalidArgument(source + ": no PEM certificate or Kubernetes Secret found");
}

Result<MaterialSet> LoadDirectory(const std::string& dir) {
  MaterialSet set;
  set.source = dir;
  set.kind = "directory";
  const std::string base = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  std::string cert_file;
  for (const char* name : {"cert-chain.pem", "ca-cert.pem", "tls.crt"}) {
    if (FileExists(base + name)) {
      cert_file = name;
      break;
    }
  }
  if (cert_file.empty()) {
    return NotFound(dir + ": no cert-chain.pem (nor ca-cert.pem or tls.crt) in this directory");
  }
  ASSIGN_OR_RETURN(std::string chain, ReadInput(base + cert_file));
  RETURN_IF_ERROR(AddPem(chain, base + cert_file, false, &set));
  if (set.chain.empty()) return InvalidArgument(base + cert_file + ": no certificate");
  set.key.reset();  // keys only from the key file
  for (const char* name : {"key.pem", "ca-key.pem", "tls.key"}) {
    if (!FileExists(base + name)) continue;
    ASSIGN_OR_RETURN(std::string key_pem, ReadInput(base + name));
    auto key = pki::PrivateKey::FromPem(key_pem);
    if (!key.ok()) return key.status().WithContext(base + name);
    set.key = std::move(key).value();
    break;
  }
  for (const char* name : {"root-cert.pem", "ca.crt"}) {
    if (!FileExists(base + name)) continue;
    ASSIGN_OR_RETURN(std::string roots, ReadInput(base + name));
    MaterialSet tmp;
    RETURN_IF_ERROR(AddPem(roots, base + name, true, &tmp));
    set.roots = std::move(tmp.roots);
    set.roots_name = name;
    break;
  }
  return set;
}

Result<std::vector<pki::Certificate>> LoadRoots(const std::string& path) {
  ASSIGN_OR_RETURN(std::string data, ReadInput(path));
  MaterialSet tmp;
  RETURN_IF_ERROR(AddPem(data, path, true, &tmp));
  if (tmp.roots.empty()) return InvalidArgument(path + ": no certificate");
  return tmp.roots;
}

Result<std::vector<MaterialSet>> LoadInputs(const std::vector<std::string>& inputs) {
  std::vector<MaterialSet> sets;
  // Plain PEM files. Each file with certificates is its own set: two workload certificates named
  // side by side are two workloads, not one chain. A file that holds only a key, and a file
  // named root-cert.pem or ca.crt, are companions that the certificate sets share.
  std::vector<MaterialSet> file_sets;
  std::vector<std::pair<std::string, pki::PrivateKey>> lone_keys;  // file, key
  std::vector<pki::Certificate> file_roots;
  std::vector<std::string> roots_names;
  for (const std::string& input : inputs) {
    if (input == "-") {
      ASSIGN_OR_RETURN(std::string data, ReadInput("-"));
      ASSIGN_OR_RETURN(std::vector<MaterialSet> parsed,
                       ParseMaterial(data, "standard input", "stdin"));
      for (auto& s : parsed) sets.push_back(std::move(s));
    } else if (IsDirectory(input)) {
      ASSIGN_OR_RETURN(MaterialSet set, LoadDirectory(input));
      sets.push_back(std::move(set));
    } else {
      ASSIGN_OR_RETURN(std::string data, ReadInput(input));
      const std::string name = Basename(input);
      const bool roots_file = name == "root-cert.pem" || name == "ca.crt";
      const std::string_view body = TrimLeft(data);
      if (!roots_file && !body.empty() && data.find("-----BEGIN ") == std::string::npos) {
        // A Secret saved to a file.
        ASSIGN_OR_RETURN(std::vector<MaterialSet> parsed, ParseMaterial(data, input, "file"));
        for (auto& s : parsed) sets.push_back(std::move(s));
        continue;
      }
      if (data.find("-----BEGIN ") == std::string::npos) {
        RETURN_IF_ERROR(ParseMaterial(data, input, "file").status());
      }
      MaterialSet one;
      one.source = input;
      one.kind = "file";
      RETURN_IF_ERROR(AddPem(data, input, roots_file, &one));
      if (roots_file) {
        for (auto& c : one.roots) file_roots.push_back(std::move(c));
        roots_names.push_back(input);
        if (one.key.has_value()) lone_keys.emplace_back(input, std::move(*one.key));
      } else if (one.chain.empty()) {
        if (one.key.has_value()) lone_keys.emplace_back(input, std::move(*one.key));
      } else {
        file_sets.push_back(std::move(one));
      }
    }
  }
  if (file_sets.empty() && !file_roots.empty()) {
    // Only roots: inspect them as a set of their own.
    MaterialSet roots_only;
    roots_only.kind = "file";
    file_sets.push_back(std::move(roots_only));
  }
  if (file_sets.empty() && !lone_keys.empty()) {
    return InvalidArgument(lone_keys.front().first + ": no certificate (only a private key)");
  }
  // A key file goes with the certificate set whose leaf it matches (the only one if there is
  // one); a key that matches none is still checked against a lone certificate set, so that
  // "key does not match" is reported rather than guessed away.
  for (auto& [file, key] : lone_keys) {
    MaterialSet* owner = file_sets.size() == 1 ? &file_sets.front() : nullptr;
    for (MaterialSet& set : file_sets) {
      if (owner == nullptr && !set.chain.empty() && !set.key.has_value() &&
          pki::SamePublicKey(set.chain.front().PublicKey(), key.get())) {
        owner = &set;
      }
    }
    if (owner == nullptr) {
      return InvalidArgument(file + ": this private key matches none of the certificates given");
    }
    if (owner->key.has_value()) return InvalidArgument(file + ": a second private key");
    owner->key = std::move(key);
    owner->source += " + " + file;
  }
  std::string roots_name;
  for (size_t i = 0; i < roots_names.size(); ++i) roots_name += (i ? " + " : "") + roots_names[i];
  for (MaterialSet& set : file_sets) {
    if (!file_roots.empty()) {
      set.roots = file_roots;
      set.roots_name = roots_name;
      if (set.chain.empty() || file_sets.size() == 1) {
        set.source += std::string(set.source.empty() ? "" : " + ") + roots_name;
      }
    }
  }
  sets.insert(sets.begin(), std::make_move_iterator(file_sets.begin()),
              std::make_move_iterator(file_sets.end()));
  return sets;
}

}  // namespace istioca::ca
