// tests/k8s/fixture.h — a fake API server over TLS on 127.0.0.1 and a client for it.
#pragma once

#include <catch2/catch.hpp>

#include "k8s/http_api.h"
#include "tests/fakeapi/fake_apiserver.h"

namespace istioca::k8s::testing {

inline constexpr const char* kAdminToken = "admin-token-0123456789abcdef";
inline constexpr const char* kUserToken = "user-token-0123456789abcdef";

inline const fakeapi::TestTls& Tls() {
  static const fakeapi::TestTls tls = [] {
    auto t = fakeapi::MakeTestTls();
    REQUIRE(t.ok());
    return *t;
  }();
  return tls;
}

struct FakeCluster {
  std::unique_ptr<fakeapi::FakeApiServer> server;

  explicit FakeCluster(
      std::chrono::milliseconds bookmark_interval = std::chrono::milliseconds(5000)) {
    fakeapi::FakeApiOptions o;
    o.cert_pem = Tls().cert_pem;
    o.key_pem = Tls().key_pem;
    o.bookmark_interval = bookmark_interval;
    auto s = fakeapi::FakeApiServer::Start(o);
    INFO(s.status().ToString());
    REQUIRE(s.ok());
    server = std::move(s).value();
    server->AddUser(kAdminToken, "admin", true);
    server->AddUser(kUserToken, "alice", false);
  }

  RestConfig Config(const std::string& token = kAdminToken) const {
    RestConfig c;
    c.server = server->url();
    c.ca_pem = Tls().ca_pem;
    c.token = token;
    return c;
  }

  std::unique_ptr<HttpApi> Client(const std::string& token = kAdminToken,
                                  HttpApiOptions o = {}) const {
    o.initial_backoff = std::chrono::milliseconds(5);
    o.max_backoff = std::chrono::milliseconds(20);
    auto api = HttpApi::Create(Config(token), o);
    REQUIRE(api.ok());
    return std::move(api).value();
  }

  void AddServiceAccount(const std::string& ns, const std::string& name) {
    fakeapi::OJson sa;
    sa["metadata"]["name"] = name;
    server->Put("serviceaccounts", ns, sa);
  }
};

}  // namespace istioca::k8s::testing
