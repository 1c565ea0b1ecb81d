// tests/fakeapi/fake_apiserver.h — an in-memory Kubernetes API server for tests and benchmarks.
//
// It speaks HTTPS (or plain HTTP) with bearer tokens and answers like the recorded samples in
// shared/k8s-api-samples: Secrets, ServiceAccounts and Leases with resourceVersions from one
// counter, lists with limit/continue, watches as chunked JSON lines with BOOKMARK and ERROR
// (410) events, Status bodies for 400/401/403/404/409/410/422/500 in the server's key order,
// the field selector type=<t> on secrets, TokenReview for configured tokens. ConfigMaps like
// Secrets (samples 102-109, no base64 in data). Namespaces as cluster-scoped objects: labelled
// with their name, Active; DELETE turns one Terminating (086) until Remove() takes it away, and
// creates in a Terminating namespace answer 403 NamespaceTerminating (088). Faults can be
// injected: a rate of 500 answers, latency, dropped watches, expiry of every older RV
// (forced 410 → relist), and a restart on the same port with the state kept.
//
// Not modelled: RBAC rules (a token is either allowed everything or nothing), PATCH, label
// selectors, the namespace controller (deleting a namespace leaves its content), managedFields,
// historical snapshots for paged lists (pages are read from the current state; the list RV is that
// of the first page).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace istioca::fakeapi {

using OJson = nlohmann::ordered_json;

struct TokenIdentity {
  std::string username;
  std::string uid;
  std::vector<std::string> groups;
  std::vector<std::string> audiences;  // the token's aud claim
  // user.extra of a pod-bound token (sample 065): pod-name, pod-uid.
  std::map<std::string, std::vector<std::string>> extra;
};

struct FakeApiOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  // PEM server certificate and key; both empty: plain HTTP.
  std::string cert_pem;
  std::string key_pem;
  std::chrono::milliseconds bookmark_interval{5000};
  // Older watch events are dropped past this many (their RVs then answer 410).
  size_t max_events = 50000;
  uint64_t seed = 1;
  // Creates into a namespace without a Namespace object answer 404 (sample 092). Off by default:
  // most tests never create namespaces. A Terminating namespace refuses creates either way (088).
  bool require_namespaces = false;
};

class FakeApiServer {
 public:
  static Result<std::unique_ptr<FakeApiServer>> Start(const FakeApiOptions& options);
  ~FakeApiServer();

  int port() const { return port_; }
  // "https://localhost:<port>" (the test certificate names localhost) or "http://127.0.0.1:<port>".
  std::string url() const;
  void Stop();
  // Stops and starts again on the same port; objects, RVs and tokens are kept, open watches end.
  Status Restart();

  // Tokens. An admin may do anything; any other known user is refused everything (403).
  void AddUser(const std::string& token, const std::string& user, bool admin);
  // A token that TokenReview recognises.
  void AddReviewableToken(const std::string& token, const TokenIdentity& identity);

  // State, without HTTP. `plural` is "secrets", "configmaps", "serviceaccounts", "leases" or
  // "namespaces" (cluster-scoped: ns "").
  OJson Put(const std::string& plural, const std::string& ns, OJson object);  // create or replace
  bool Remove(const std::string& plural, const std::string& ns, const std::string& name);
  std::optional<OJson> Find(const std::string& plural, const std::string& ns,
                            const std::string& name) const;
  std::vector<OJson> All(const std::string& plural) const;
  int64_t resource_version() const;

  // Faults.
  void SetErrorRate(double rate);  // fraction of requests (watch starts included) answered 500
  void SetLatency(std::chrono::milliseconds latency);
  void FailNext(int n);  // the next n requests are answered 500, whatever the error rate
  void DropWatches();    // closes every open watch connection abruptly
  void ExpireHistory();  // every RV up to now becomes too old: open watches get an ERROR 410
                         // event, and new watches/continues from older RVs get 410

  // Called (under the server's lock: keep it quick) with every object stored by a create or
  // update, e.g. to check that no half-made secret is ever written.
  void SetWriteObserver(std::function<void(const std::string& plural, const OJson& object)> fn);

  // Namespaces, without HTTP: an Active one, or turn one Terminating (as a DELETE does).
  OJson AddNamespace(const std::string& name);
  void SetNamespaceTerminating(const std::string& name);

  // Counters. A write is a create or update (PUT) that stored the object.
  uint64_t Writes(const std::string& plural, const std::string& ns, const std::string& name) const;
  std::map<std::string, uint64_t> AllWrites(const std::string& plural) const;  // "ns/name" → n
  uint64_t requests() const { return requests_.load(); }
  uint64_t injected_errors() const { return injected_errors_.load(); }
  int open_watches() const { return open_watches_.load(); }

 private:
  struct Event {
    int64_t rv;
    std::string plural;
    std::string type;
    OJson object;
  };
  struct Caller {
    bool known = false;
    bool admin = false;
    std::string user;
  };

  explicit FakeApiServer(const FakeApiOptions& options);
  Status Listen();
  void Handle(const httplib::Request& req, httplib::Response& res);
  void HandleWatch(const std::string& plural, const std::string& ns, const httplib::Request& req,
                   httplib::Response& res);
  void HandleTokenReview(const httplib::Request& req, httplib::Response& res);
  OJson StoreLocked(const std::string& plural, const std::string& ns, OJson object, bool create);
  OJson TerminateNamespaceLocked(const std::string& name);  // the namespace must exist
  void AppendEventLocked(const std::string& plural, const std::string& type, const OJson& object);
  Caller Authenticate(const httplib::Request& req) const;

  FakeApiOptions options_;
  int port_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::condition_variable events_cv_;
  int64_t rv_ = 100;
  int64_t oldest_rv_ = 0;  // watches from an RV below this get 410
  uint64_t drop_generation_ = 0;
  uint64_t expire_generation_ = 0;
  std::map<std::string, std::map<std::string, OJson>> objects_;  // plural → "ns/name" → object
  std::deque<Event> events_;
  std::map<std::string, uint64_t> writes_;  // "plural/ns/name"
  std::function<void(const std::string&, const OJson&)> write_observer_;
  std::map<std::string, Caller> users_;
  std::map<std::string, TokenIdentity> reviewable_;
  double error_rate_ = 0;
  int fail_next_ = 0;
  std::chrono::milliseconds latency_{0};
  std::mt19937_64 rng_;
  uint64_t uid_counter_ = 0;

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> injected_errors_{0};
  std::atomic<int> open_watches_{0};
};

// A TLS identity for the fake: a throwaway CA and a server certificate for DNS "localhost".
struct TestTls {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
};
Result<TestTls> MakeTestTls();

// A kubeconfig with one cluster/user/context pointing at `server` (CA inline, bearer token).
std::string KubeconfigYaml(const std::string& server, const std::string& ca_pem,
                           const std::string& token);

}  // namespace istioca::fakeapi
