#include "k8s/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/base64.h"

namespace istioca::k8s {
namespace {

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Base64 as kubeconfig *-data fields use it (standard alphabet, padding optional).
Result<std::string> DecodeBase64(const std::string& in, const std::string& field) {
  auto out = Base64Decode(in, {.ignore_whitespace = true, .padding_optional = true});
  if (!out.ok()) return InvalidArgument("kubeconfig: " + field + " is not base64");
  return out;
}

// Finds the entry named `name` in a kubeconfig list (clusters, users, contexts).
YAML::Node FindNamed(const YAML::Node& list, const std::string& name, const char* key) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const auto& item : list) {
    if (item["name"] && item["name"].as<std::string>() == name) return item[key];
  }
  return YAML::Node();
}

std::string Str(const YAML::Node& n, const char* key) {
  return n && n[key] && n[key].IsScalar() ? n[key].as<std::string>() : std::string();
}

// "<field>-data" (base64) wins over "<field>" (a path relative to the kubeconfig).
Result<std::string> DataOrFile(const YAML::Node& n, const std::string& field,
                               const std::filesystem::path& base) {
  std::string data = Str(n, (field + "-data").c_str());
  if (!data.empty()) return DecodeBase64(data, field + "-data");
  std::string path = Str(n, field.c_str());
  if (path.empty()) return std::string();
  std::filesystem::path p(path);
  if (p.is_relative()) p = base / p;
  auto content = ReadFile(p.string());
  if (!content.ok()) return InvalidArgument("kubeconfig: " + field + ": cannot read " + p.string());
  return content;
}

}  // namespace

Result<ServerUrl> ParseServerUrl(const std::string& server) {
  ServerUrl url;
  std::string rest = server;
  if (rest.rfind("https://", 0) == 0) {
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    url.tls = false;
    url.port = 80;
    rest = rest.substr(7);
  } else {
    return InvalidArgument("kubernetes server URL must start with https:// or http://: " + server);
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    if (rest.substr(slash) != "/") {
      return InvalidArgument("kubernetes server URL with a path is not supported: " + server);
    }
    rest = rest.substr(0, slash);
  }
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return InvalidArgument("bad IPv6 address in " + server);
    url.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return InvalidArgument("bad server URL " + server);
      port = rest.substr(close + 2);
    }
  } else if (auto colon = rest.find(':'); colon != std::string::npos) {
    url.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    url.host = rest;
  }
  if (url.host.empty()) return InvalidArgument("kubernetes server URL has no host: " + server);
  if (!port.empty()) {
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p <= 0 || p > 65535) return InvalidArgument("bad port in " + server);
    url.port = static_cast<int>(p);
  }
  return url;
}

Result<RestConfig> LoadKubeconfig(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("cannot read kubeconfig " + path + ": " + e.what());
  }
  const std::filesystem::path base = std::filesystem::path(path).parent_path();
  std::string context_name = Str(root, "current-context");
  if (context_name.empty())
    return InvalidArgument("kubeconfig " + path + " has no current-context");
  YAML::Node context = FindNamed(root["contexts"], context_name, "context");
  if (!context) return InvalidArgument("kubeconfig: context " + context_name + " not found");
  YAML::Node cluster = FindNamed(root["clusters"], Str(context, "cluster"), "cluster");
  if (!cluster)
    return InvalidArgument("kubeconfig: cluster of context " + context_name + " not found");
  YAML::Node user = FindNamed(root["users"], Str(context, "user"), "user");

  RestConfig c;
  c.server = Str(cluster, "server");
  if (c.server.empty()) return InvalidArgument("kubeconfig: cluster has no server");
  RETURN_IF_ERROR(ParseServerUrl(c.server));
  c.insecure_skip_verify = Str(cluster, "insecure-skip-tls-verify") == "true";
  ASSIGN_OR_RETURN(c.ca_pem, DataOrFile(cluster, "certificate-authority", base));
  if (user) {
    ASSIGN_OR_RETURN(c.client_cert_pem, DataOrFile(user, "client-certificate", base));
    ASSIGN_OR_RETURN(c.client_key_pem, DataOrFile(user, "client-key", base));
    c.token = Str(user, "token");
    std::string token_file = Str(user, "tokenFile");
    if (!token_file.empty()) {
      std::filesystem::path p(token_file);
      c.token_file = (p.is_relative() ? base / p : p).string();
    }
  }
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    return InvalidArgument("kubeconfig: client-certificate and client-key must come together");
  }
  return c;
}

Result<RestConfig> InClusterConfig(const std::function<const char*(const char*)>& getenv,
                                   const std::string& dir) {
  const char* host = getenv("KUBERNETES_SERVICE_HOST");
  const char* port = getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
    return FailedPrecondition(
        "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset) and no --kube-config given");
  }
  RestConfig c;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  c.server = "https://" + h + ":" + port;
  RETURN_IF_ERROR(ParseServerUrl(c.server));
  auto ca = ReadFile(dir + "/ca.crt");
  if (!ca.ok()) return FailedPrecondition("in-cluster config: cannot read " + dir + "/ca.crt");
  c.ca_pem = *ca;
  c.token_file = dir + "/token";
  if (!ReadFile(c.token_file).ok()) {
    return FailedPrecondition("in-cluster config: cannot read " + c.token_file);
  }
  return c;
}

}  // namespace istioca::k8s
