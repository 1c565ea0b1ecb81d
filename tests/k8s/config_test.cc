#include "k8s/config.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "base/base64.h"
#include "k8s/objects.h"

namespace istioca::k8s {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("k8s_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string Write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name) << content;
    return (path / name).string();
  }
};

const char* kCa = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";

TEST_CASE("kubeconfig: the current context picks cluster and user, -data fields are base64",
          "[k8s][config]") {
  TempDir dir;
  std::string yaml = R"(apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://wrong:1
- name: prod
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: )" +
                     Base64Encode(kCa) + R"(
users:
- name: ops
  user:
    token: secret-token
    client-certificate-data: )" +
                     Base64Encode("CERT") + R"(
    client-key-data: )" +
                     Base64Encode("KEY") + R"(
contexts:
- name: a
  context: {cluster: other, user: ops}
- name: b
  context: {cluster: prod, user: ops}
current-context: b
)";
  auto c = LoadKubeconfig(dir.Write("config", yaml));
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  CHECK(c->server == "https://10.0.0.1:6443");
  CHECK(c->ca_pem == kCa);
  CHECK(c->token == "secret-token");
  CHECK(c->client_cert_pem == "CERT");
  CHECK(c->client_key_pem == "KEY");
}

TEST_CASE("kubeconfig: file paths are relative to the kubeconfig", "[k8s][config]") {
  TempDir dir;
  dir.Write("ca.crt", kCa);
  dir.Write("tls.crt", "CERT");
  dir.Write("tls.key", "KEY");
  auto c = LoadKubeconfig(dir.Write("config", R"(clusters:
- name: c
  cluster: {server: "https://[::1]:6443", certificate-authority: ca.crt}
users:
- name: u
  user: {client-certificate: tls.crt, client-key: tls.key, tokenFile: token}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
)"));
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  CHECK(c->ca_pem == kCa);
  CHECK(c->client_cert_pem == "CERT");
  CHECK(c->token_file == (dir.path / "token").string());
  auto url = ParseServerUrl(c->server);
  REQUIRE(url.ok());
  CHECK(url->host == "::1");
  CHECK(url->port == 6443);
}

TEST_CASE("kubeconfig: unusable files are refused with a reason", "[k8s][config]") {
  auto [name, yaml] = GENERATE(table<std::string, std::string>({
      {"no current-context", "clusters: []\n"},
      {"missing context", "current-context: nope\ncontexts: []\n"},
      {"missing cluster",
       "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"},
      {"no server",
       "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\nclusters:\n- name: c\n  "
       "cluster: {}\n"},
      {"bad scheme",
       "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\nclusters:\n- name: c\n  "
       "cluster: {server: 'ftp://a'}\n"},
      {"bad base64",
       "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\nclusters:\n- name: c\n  "
       "cluster: {server: 'https://a', certificate-authority-data: '@@'}\n"},
      {"missing CA file",
       "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\nclusters:\n- name: c\n  "
       "cluster: {server: 'https://a', certificate-authority: /nonexistent/ca}\n"},
      {"cert without key",
       "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- "
       "name: c\n  cluster: {server: 'https://a'}\nusers:\n- name: u\n  user: "
       "{client-certificate-data: QQ==}\n"},
      {"not yaml", "{{{"},
  }));
  TempDir dir;
  auto c = LoadKubeconfig(dir.Write("config", yaml));
  INFO(name);
  CHECK_FALSE(c.ok());
  CHECK(c.status().code() == Code::kInvalidArgument);
}

TEST_CASE("in-cluster config reads the service host, CA and token path", "[k8s][config]") {
  TempDir dir;
  dir.Write("ca.crt", kCa);
  dir.Write("token", "tok");
  std::map<std::string, std::string> env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                         {"KUBERNETES_SERVICE_PORT", "443"}};
  auto getenv = [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto c = InClusterConfig(getenv, dir.path.string());
  REQUIRE(c.ok());
  CHECK(c->server == "https://10.96.0.1:443");
  CHECK(c->ca_pem == kCa);
  CHECK(c->token_file == (dir.path / "token").string());
  CHECK(c->token.empty());  // read by the client, so rotation is seen

  env["KUBERNETES_SERVICE_HOST"] = "fd00::1";
  auto v6 = InClusterConfig(getenv, dir.path.string());
  REQUIRE(v6.ok());
  CHECK(v6->server == "https://[fd00::1]:443");

  env.clear();
  CHECK(InClusterConfig(getenv, dir.path.string()).status().code() == Code::kFailedPrecondition);
}

TEST_CASE("server URLs", "[k8s][config]") {
  auto [text, ok, host, port] = GENERATE(table<std::string, bool, std::string, int>({
      {"https://example:6443", true, "example", 6443},
      {"https://example", true, "example", 443},
      {"https://example/", true, "example", 443},
      {"http://127.0.0.1:8080", true, "127.0.0.1", 8080},
      {"https://[::1]", true, "::1", 443},
      {"example:443", false, "", 0},
      {"https://example:0", false, "", 0},
      {"https://example:99999", false, "", 0},
      {"https://example:x", false, "", 0},
      {"https://example/prefix", false, "", 0},
      {"https://", false, "", 0},
  }));
  auto url = ParseServerUrl(text);
  INFO(text);
  REQUIRE(url.ok() == ok);
  if (ok) {
    CHECK(url->host == host);
    CHECK(url->port == port);
  }
}

}  // namespace
}  // namespace istioca::k8s
