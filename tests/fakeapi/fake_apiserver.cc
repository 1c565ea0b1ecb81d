#include "tests/fakeapi/fake_apiserver.h"

#include <httplib.h>
#include <openssl/pem.h>

#include <regex>
#include <sstream>

#include "base/base64.h"
#include "base/time.h"
#include "pki/issue.h"
#include "pki/pem.h"

namespace istioca::fakeapi {
namespace {

using namespace std::chrono_literals;

struct Kind {
  std::string plural, kind, group, api_version;
  bool namespaced = true;
  // DELETE answers a Status naming the object (samples 017, 108) rather than the object (008).
  bool delete_answers_status = false;
  std::string Qualified() const { return group.empty() ? plural : plural + "." + group; }
};

const Kind* FindKind(const std::string& group, const std::string& plural) {
  static const Kind kinds[] = {
      {"secrets", "Secret", "", "v1", true, true},
      {"configmaps", "ConfigMap", "", "v1", true, true},
      {"serviceaccounts", "ServiceAccount", "", "v1"},
      {"namespaces", "Namespace", "", "v1", false},
      {"leases", "Lease", "coordination.k8s.io", "coordination.k8s.io/v1"},
  };
  for (const auto& k : kinds) {
    if (k.plural == plural && k.group == group) return &k;
  }
  return nullptr;
}

const Kind* KindByPlural(const std::string& plural) {
  for (const char* g : {"", "coordination.k8s.io"}) {
    if (const Kind* k = FindKind(g, plural)) return k;
  }
  return nullptr;
}

// {"kind":"Status",...} in the API server's key order (sample README, "Status objects").
OJson StatusBody(int code, const std::string& reason, const std::string& message,
                 OJson details = nullptr, OJson metadata = OJson::object()) {
  OJson s;
  s["kind"] = "Status";
  s["apiVersion"] = "v1";
  s["metadata"] = std::move(metadata);
  s["status"] = "Failure";
  s["message"] = message;
  if (!reason.empty()) s["reason"] = reason;
  if (!details.is_null()) s["details"] = std::move(details);
  s["code"] = code;
  return s;
}

OJson Details(const std::string& name, const Kind& k) {
  OJson d = OJson::object();
  if (!name.empty()) d["name"] = name;
  if (!k.group.empty()) d["group"] = k.group;
  d["kind"] = k.plural;
  return d;
}

void Send(httplib::Response& res, int code, const OJson& body) {
  res.status = code;
  res.set_header("Cache-Control", "no-cache, private");
  res.set_content(body.dump() + "\n", "application/json");
}

void SendStatus(httplib::Response& res, const OJson& status) { Send(res, status["code"], status); }

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

std::string Base64Url(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63]};
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63]};
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(const std::string& in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-' || c == '+')
      v = 62;
    else if (c == '_' || c == '/')
      v = 63;
    else if (c == '=')
      continue;
    else
      return std::nullopt;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// Index of the first character that is not standard base64 with padding; -1 if valid.
int BadBase64At(const std::string& s) {
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t end = s.size();
  while (end > 0 && s[end - 1] == '=' && s.size() - end < 2) --end;
  for (size_t i = 0; i < end; ++i) {
    if (alphabet.find(s[i]) == std::string::npos) return static_cast<int>(i);
  }
  if (s.size() % 4 != 0) return static_cast<int>(s.size() / 4 * 4);
  return -1;
}

bool IsMicroTime(const std::string& s) {
  static const std::regex re(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$)");
  return std::regex_match(s, re);
}

// Map keys (data keys, labels, annotations) come out sorted.
OJson Sorted(const OJson& map) {
  if (!map.is_object()) return map;
  std::map<std::string, OJson> sorted;
  for (auto& [key, v] : map.items()) sorted[key] = v;
  OJson out = OJson::object();
  for (auto& [key, v] : sorted) out[key] = v;
  return out;
}

// Rebuilds an object in the server's key order (README: "Top-level key order").
OJson Canonical(const Kind& k, const OJson& in) {
  OJson out;
  out["kind"] = k.kind;
  out["apiVersion"] = k.api_version;
  OJson md;
  const OJson& m = in.contains("metadata") ? in["metadata"] : OJson::object();
  for (const char* key : {"name", "generateName", "namespace", "uid", "resourceVersion",
                          "creationTimestamp", "deletionTimestamp", "labels", "annotations"}) {
    if (!m.contains(key) || m[key].is_null()) continue;
    const bool is_map = std::string_view(key) == "labels" || std::string_view(key) == "annotations";
    md[key] = is_map ? Sorted(m[key]) : m[key];
  }
  if (k.kind == "Namespace") {
    // Sample 085: the server labels every namespace with its name.
    md["labels"]["kubernetes.io/metadata.name"] = m.value("name", "");
    md["labels"] = Sorted(md["labels"]);
  }
  out["metadata"] = md.is_null() ? OJson::object() : md;
  if (k.kind == "Secret" || k.kind == "ConfigMap") {
    for (const char* key : {"immutable", "data", "binaryData"}) {
      if (in.contains(key)) out[key] = Sorted(in[key]);
    }
    if (k.kind == "Secret") out["type"] = in.value("type", "Opaque");
    return out;
  }
  if (k.kind == "Namespace") {
    out["spec"] = in.contains("spec") ? in["spec"] : OJson{{"finalizers", {"kubernetes"}}};
    out["status"] = in.contains("status") ? in["status"] : OJson{{"phase", "Active"}};
    return out;
  }
  for (auto& [key, v] : in.items()) {
    if (key != "kind" && key != "apiVersion" && key != "metadata") out[key] = v;
  }
  return out;
}

bool Terminating(const OJson& ns_object) {
  return ns_object.contains("status") && ns_object["status"].value("phase", "") == "Terminating";
}

struct Selector {
  std::vector<std::pair<std::string, std::string>> terms;  // field → value
  bool Matches(const OJson& o) const {
    for (const auto& [f, v] : terms) {
      std::string actual;
      if (f == "type")
        actual = o.value("type", "");
      else if (f == "metadata.name")
        actual = o["metadata"].value("name", "");
      else if (f == "metadata.namespace")
        actual = o["metadata"].value("namespace", "");
      if (actual != v) return false;
    }
    return true;
  }
};

// Parses "type=istio.io/key-and-cert[,metadata.name=x]"; the bad field name on failure.
std::optional<Selector> ParseSelector(const std::string& plural, const std::string& text,
                                      std::string* bad) {
  Selector sel;
  std::stringstream ss(text);
  std::string term;
  while (std::getline(ss, term, ',')) {
    if (term.empty()) continue;
    auto eq = term.find('=');
    std::string field = term.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : term.substr(eq + 1);
    if (!value.empty() && value[0] == '=') value = value.substr(1);
    bool ok = field == "metadata.name" || field == "metadata.namespace" ||
              (plural == "secrets" && field == "type");
    if (!ok || eq == std::string::npos) {
      *bad = field;
      return std::nullopt;
    }
    sel.terms.emplace_back(field, value);
  }
  return sel;
}

std::string NowRfc3339() { return FormatRfc3339(istioca::SystemClock::Get().Now()); }

}  // namespace

FakeApiServer::FakeApiServer(const FakeApiOptions& options)
    : options_(options), rng_(options.seed) {}

FakeApiServer::~FakeApiServer() { Stop(); }

Result<std::unique_ptr<FakeApiServer>> FakeApiServer::Start(const FakeApiOptions& options) {
  std::unique_ptr<FakeApiServer> s(new FakeApiServer(options));
  s->port_ = options.port;
  RETURN_IF_ERROR(s->Listen());
  return s;
}

std::string FakeApiServer::url() const {
  if (options_.cert_pem.empty()) return "http://127.0.0.1:" + std::to_string(port_);
  return "https://localhost:" + std::to_string(port_);
}

Status FakeApiServer::Listen() {
  if (!options_.cert_pem.empty()) {
    BIO* bio =
        BIO_new_mem_buf(options_.cert_pem.data(), static_cast<int>(options_.cert_pem.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    bio = BIO_new_mem_buf(options_.key_pem.data(), static_cast<int>(options_.key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (cert == nullptr || key == nullptr) {
      X509_free(cert);
      EVP_PKEY_free(key);
      return InvalidArgument("fake apiserver: bad certificate or key PEM");
    }
    server_ = std::make_unique<httplib::SSLServer>(cert, key);
    X509_free(cert);  // the SSL_CTX holds its own references
    EVP_PKEY_free(key);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  if (!server_->is_valid()) return Internal("fake apiserver: TLS setup failed");
  server_->new_task_queue = [] { return new httplib::ThreadPool(64); };
  server_->set_keep_alive_max_count(100000);
  server_->set_tcp_nodelay(true);
  // Idle keep-alive connections hold a worker until this timeout, also when stopping; keep it
  // short so a restart is quick.
  server_->set_keep_alive_timeout(2);
  auto handler = [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); };
  server_->Get(".*", handler);
  server_->Post(".*", handler);
  server_->Put(".*", handler);
  server_->Delete(".*", handler);
  server_->Patch(".*", handler);
  stopping_ = false;
  if (port_ == 0) {
    port_ = server_->bind_to_any_port(options_.host);
    if (port_ <= 0) return Unavailable("fake apiserver: cannot bind " + options_.host);
  } else {
    // After a restart the old socket may linger briefly.
    bool bound = false;
    for (int i = 0; i < 50 && !(bound = server_->bind_to_port(options_.host, port_)); ++i) {
      std::this_thread::sleep_for(100ms);
    }
    if (!bound) return Unavailable("fake apiserver: cannot bind port " + std::to_string(port_));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return OkStatus();
}

void FakeApiServer::Stop() {
  if (!server_) return;
  stopping_ = true;
  events_cv_.notify_all();
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

Status FakeApiServer::Restart() {
  Stop();
  return Listen();
}

void FakeApiServer::AddUser(const std::string& token, const std::string& user, bool admin) {
  std::lock_guard<std::mutex> lock(mu_);
  users_[token] = Caller{true, admin, user};
}

void FakeApiServer::AddReviewableToken(const std::string& token, const TokenIdentity& identity) {
  std::lock_guard<std::mutex> lock(mu_);
  reviewable_[token] = identity;
}

void FakeApiServer::SetErrorRate(double rate) {
  std::lock_guard<std::mutex> lock(mu_);
  error_rate_ = rate;
}

void FakeApiServer::SetLatency(std::chrono::milliseconds latency) {
  std::lock_guard<std::mutex> lock(mu_);
  latency_ = latency;
}

void FakeApiServer::SetWriteObserver(std::function<void(const std::string&, const OJson&)> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  write_observer_ = std::move(fn);
}

void FakeApiServer::FailNext(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_next_ = n;
}

void FakeApiServer::DropWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  ++drop_generation_;
  events_cv_.notify_all();
}

void FakeApiServer::ExpireHistory() {
  std::lock_guard<std::mutex> lock(mu_);
  oldest_rv_ = ++rv_;  // continue tokens and watches from any earlier RV are now too old
  events_.clear();
  ++expire_generation_;
  events_cv_.notify_all();
}

int64_t FakeApiServer::resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rv_;
}

uint64_t FakeApiServer::Writes(const std::string& plural, const std::string& ns,
                               const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = writes_.find(plural + "/" + ns + "/" + name);
  return it == writes_.end() ? 0 : it->second;
}

std::map<std::string, uint64_t> FakeApiServer::AllWrites(const std::string& plural) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, uint64_t> out;
  for (const auto& [key, n] : writes_) {
    if (key.rfind(plural + "/", 0) == 0) out[key.substr(plural.size() + 1)] = n;
  }
  return out;
}

void FakeApiServer::AppendEventLocked(const std::string& plural, const std::string& type,
                                      const OJson& object) {
  events_.push_back(Event{rv_, plural, type, object});
  while (events_.size() > options_.max_events) {
    oldest_rv_ = events_.front().rv;
    events_.pop_front();
  }
  events_cv_.notify_all();
}

OJson FakeApiServer::StoreLocked(const std::string& plural, const std::string& ns, OJson object,
                                 bool create) {
  const Kind& k = *KindByPlural(plural);
  std::string name = object["metadata"].value("name", "");
  std::string key = ns + "/" + name;
  auto& bucket = objects_[plural];
  auto it = bucket.find(key);
  if (k.namespaced) object["metadata"]["namespace"] = ns;
  if (it != bucket.end()) {
    object["metadata"]["uid"] = it->second["metadata"]["uid"];
    object["metadata"]["creationTimestamp"] = it->second["metadata"]["creationTimestamp"];
  } else {
    char uid[40];
    uint64_t n = ++uid_counter_;
    std::snprintf(uid, sizeof uid, "00000000-0000-4000-8000-%012llx",
                  static_cast<unsigned long long>(n));
    object["metadata"]["uid"] = uid;
    object["metadata"]["creationTimestamp"] = NowRfc3339();
  }
  object["metadata"]["resourceVersion"] = std::to_string(++rv_);
  OJson stored = Canonical(k, object);
  bool existed = it != bucket.end();
  bucket[key] = stored;
  ++writes_[plural + "/" + key];
  if (write_observer_) write_observer_(plural, stored);
  AppendEventLocked(plural, existed && !create ? "MODIFIED" : "ADDED", stored);
  return stored;
}

OJson FakeApiServer::Put(const std::string& plural, const std::string& ns, OJson object) {
  std::lock_guard<std::mutex> lock(mu_);
  return StoreLocked(plural, ns, std::move(object), false);
}

OJson FakeApiServer::AddNamespace(const std::string& name) {
  OJson o;
  o["metadata"]["name"] = name;
  return Put("namespaces", "", o);
}

void FakeApiServer::SetNamespaceTerminating(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  TerminateNamespaceLocked(name);
}

OJson FakeApiServer::TerminateNamespaceLocked(const std::string& name) {
  OJson ns = objects_["namespaces"].at("/" + name);
  if (Terminating(ns)) return ns;
  ns["metadata"]["deletionTimestamp"] = NowRfc3339();
  ns["status"]["phase"] = "Terminating";
  return StoreLocked("namespaces", "", ns, false);
}

bool FakeApiServer::Remove(const std::string& plural, const std::string& ns,
                           const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& bucket = objects_[plural];
  auto it = bucket.find(ns + "/" + name);
  if (it == bucket.end()) return false;
  OJson gone = it->second;
  bucket.erase(it);
  gone["metadata"]["resourceVersion"] = std::to_string(++rv_);
  AppendEventLocked(plural, "DELETED", gone);
  return true;
}

std::optional<OJson> FakeApiServer::Find(const std::string& plural, const std::string& ns,
                                         const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto b = objects_.find(plural);
  if (b == objects_.end()) return std::nullopt;
  auto it = b->second.find(ns + "/" + name);
  if (it == b->second.end()) return std::nullopt;
  return it->second;
}

std::vector<OJson> FakeApiServer::All(const std::string& plural) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<OJson> out;
  auto b = objects_.find(plural);
  if (b != objects_.end()) {
    for (const auto& [key, o] : b->second) out.push_back(o);
  }
  return out;
}

FakeApiServer::Caller FakeApiServer::Authenticate(const httplib::Request& req) const {
  std::string auth = req.get_header_value("Authorization");
  if (auth.empty()) return Caller{true, false, "system:anonymous"};
  if (auth.rfind("Bearer ", 0) != 0) return Caller{};
  std::lock_guard<std::mutex> lock(mu_);
  auto it = users_.find(auth.substr(7));
  return it == users_.end() ? Caller{} : it->second;
}

void FakeApiServer::Handle(const httplib::Request& req, httplib::Response& res) {
  ++requests_;
  std::chrono::milliseconds latency;
  bool inject = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    latency = latency_;
    if (error_rate_ > 0) inject = std::uniform_real_distribution<double>(0, 1)(rng_) < error_rate_;
    if (fail_next_ > 0) {
      --fail_next_;
      inject = true;
    }
  }
  if (latency > 0ms) std::this_thread::sleep_for(latency);

  // Path: /api/v1/... or /apis/<group>/<version>/...
  std::vector<std::string> parts;
  {
    std::stringstream ss(req.path);
    std::string p;
    while (std::getline(ss, p, '/')) {
      if (!p.empty()) parts.push_back(p);
    }
  }
  std::string group;
  size_t i = 0;
  if (parts.size() >= 2 && parts[0] == "api" && parts[1] == "v1") {
    i = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    group = parts[1];
    i = 3;
  } else {
    return SendStatus(
        res, StatusBody(404, "NotFound", "the server could not find the requested resource",
                        OJson::object()));
  }
  std::string ns;
  if (parts.size() >= i + 3 && parts[i] == "namespaces") {
    ns = parts[i + 1];
    i += 2;
  }
  if (parts.size() <= i || parts.size() > i + 2) {
    return SendStatus(
        res, StatusBody(404, "NotFound", "the server could not find the requested resource",
                        OJson::object()));
  }
  std::string plural = parts[i];
  std::string name = parts.size() == i + 2 ? parts[i + 1] : "";

  Caller caller = Authenticate(req);
  if (!caller.known) return SendStatus(res, StatusBody(401, "Unauthorized", "Unauthorized"));

  if (group == "authentication.k8s.io" && plural == "tokenreviews" && req.method == "POST") {
    if (!caller.admin) {
      OJson d;
      d["group"] = group;
      d["kind"] = plural;
      return SendStatus(res, StatusBody(403, "Forbidden",
                                        "tokenreviews.authentication.k8s.io is forbidden: User " +
                                            Quote(caller.user) +
                                            " cannot create resource \"tokenreviews\" in API group "
                                            "\"authentication.k8s.io\" at the cluster scope",
                                        d));
    }
    if (inject) {
      ++injected_errors_;
      return SendStatus(res, StatusBody(500, "InternalError", "injected fault"));
    }
    return HandleTokenReview(req, res);
  }
  const Kind* kind = FindKind(group, plural);
  if (kind == nullptr) {
    return SendStatus(
        res, StatusBody(404, "NotFound", "the server could not find the requested resource",
                        OJson::object()));
  }
  const bool watch = req.get_param_value("watch") == "1" || req.get_param_value("watch") == "true";
  std::string verb = req.method == "GET"      ? (watch          ? "watch"
                                                 : name.empty() ? "list"
                                                                : "get")
                     : req.method == "POST"   ? "create"
                     : req.method == "PUT"    ? "update"
                     : req.method == "DELETE" ? "delete"
                                              : "patch";
  if (!caller.admin) {
    std::string subject = kind->Qualified() + (name.empty() ? "" : " " + Quote(name));
    std::string scope = ns.empty() ? "at the cluster scope" : "in the namespace " + Quote(ns);
    return SendStatus(res, StatusBody(403, "Forbidden",
                                      subject + " is forbidden: User " + Quote(caller.user) +
                                          " cannot " + verb + " resource " + Quote(plural) +
                                          " in API group " + Quote(group) + " " + scope,
                                      Details(name, *kind)));
  }
  if (inject) {
    ++injected_errors_;
    return SendStatus(res, StatusBody(500, "InternalError", "injected fault"));
  }
  if (req.method == "PATCH") {
    return SendStatus(res, StatusBody(415, "UnsupportedMediaType", "415: Unsupported Media Type",
                                      OJson::object()));
  }
  if (watch) return HandleWatch(plural, ns, req, res);

  const std::string not_found = kind->Qualified() + " " + Quote(name) + " not found";
  if (req.method == "GET" && !name.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& bucket = objects_[plural];
    auto it = bucket.find(ns + "/" + name);
    if (it == bucket.end())
      return SendStatus(res, StatusBody(404, "NotFound", not_found, Details(name, *kind)));
    return Send(res, 200, it->second);
  }

  if (req.method == "GET") {  // list
    std::string bad;
    auto sel = ParseSelector(plural, req.get_param_value("fieldSelector"), &bad);
    if (!sel)
      return SendStatus(res, StatusBody(400, "BadRequest", "field label not supported: " + bad));
    int64_t limit = 0;
    if (req.has_param("limit")) limit = std::atoll(req.get_param_value("limit").c_str());
    if (req.get_param_value("resourceVersion") == "0") limit = 0;  // watch cache: limit ignored
    std::lock_guard<std::mutex> lock(mu_);
    int64_t list_rv = rv_;
    std::string start = ns.empty() ? "" : ns + "/";
    if (req.has_param("continue")) {
      auto decoded = Base64UrlDecode(req.get_param_value("continue"));
      OJson token = decoded ? OJson::parse(*decoded, nullptr, false) : OJson();
      if (!token.is_object() || !token.contains("rv") || !token.contains("start")) {
        return SendStatus(
            res, StatusBody(400, "BadRequest", "continue key is not valid: invalid token"));
      }
      int64_t token_rv = token["rv"];
      start = token["start"];
      if (token_rv >= 0 && token_rv < oldest_rv_) {
        OJson fresh{{"v", "meta.k8s.io/v1"}, {"rv", -1}, {"start", start}};
        OJson md{{"continue", Base64Url(fresh.dump())}};
        return SendStatus(res,
                          StatusBody(410, "Expired",
                                     "The provided continue parameter is too old to display a "
                                     "consistent list result. You can start a new list without "
                                     "the continue parameter, or use the continue token in this "
                                     "response to retrieve the remainder of the results. "
                                     "Continuing with the provided token results in an "
                                     "inconsistent list - objects that were created, modified, or "
                                     "deleted between the time the first chunk was returned and "
                                     "now may show up in the list.",
                                     nullptr, md));
      }
      if (token_rv >= 0) list_rv = token_rv;
    }
    auto& bucket = objects_[plural];
    OJson items = OJson::array();
    std::string last_key;
    int64_t remaining = 0;
    for (auto it = bucket.lower_bound(start); it != bucket.end(); ++it) {
      if (!ns.empty() && it->first.rfind(ns + "/", 0) != 0) break;
      if (!sel->Matches(it->second)) continue;
      if (limit > 0 && static_cast<int64_t>(items.size()) >= limit) {
        ++remaining;
        continue;
      }
      OJson item = it->second;
      item.erase("kind");
      item.erase("apiVersion");
      items.push_back(std::move(item));
      last_key = it->first;
    }
    OJson list;
    list["kind"] = kind->kind + "List";
    list["apiVersion"] = kind->api_version;
    list["metadata"]["resourceVersion"] = std::to_string(list_rv);
    if (remaining > 0) {
      OJson token{
          {"v", "meta.k8s.io/v1"}, {"rv", list_rv}, {"start", last_key + std::string(1, '\0')}};
      list["metadata"]["continue"] = Base64Url(token.dump());
      list["metadata"]["remainingItemCount"] = remaining;
    }
    list["items"] = std::move(items);
    return Send(res, 200, list);
  }

  OJson body;
  if (!req.body.empty()) {
    body = OJson::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return SendStatus(
          res, StatusBody(400, "BadRequest",
                          "the object provided is unrecognized (must be of type " + kind->kind +
                              "): couldn't get version/kind; json parse error"));
    }
  }

  if (req.method == "DELETE") {
    std::lock_guard<std::mutex> lock(mu_);
    auto& bucket = objects_[plural];
    auto it = bucket.find(ns + "/" + name);
    if (name.empty() || it == bucket.end()) {
      return SendStatus(res, StatusBody(404, "NotFound", not_found, Details(name, *kind)));
    }
    std::string current = it->second["metadata"]["resourceVersion"];
    if (body.is_object() && body.contains("preconditions") &&
        body["preconditions"].contains("resourceVersion")) {
      std::string want = body["preconditions"]["resourceVersion"];
      if (want != current) {
        OJson d{{"name", name}, {"kind", kind->kind}};
        return SendStatus(
            res, StatusBody(409, "Conflict",
                            "Operation cannot be fulfilled on " + kind->kind + " " + Quote(name) +
                                ": the ResourceVersion in the precondition (" + want +
                                ") does not match the ResourceVersion in record (" + current +
                                "). The object might have been modified",
                            d));
      }
    }
    if (plural == "namespaces") {
      // Sample 086/089: deletion is asynchronous; the namespace turns Terminating and stays
      // until the test calls Remove() (the namespace controller's part).
      return Send(res, 200, TerminateNamespaceLocked(name));
    }
    OJson gone = it->second;
    bucket.erase(it);
    OJson event_obj = gone;
    event_obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
    AppendEventLocked(plural, "DELETED", event_obj);
    if (kind->delete_answers_status) {
      OJson s;
      s["kind"] = "Status";
      s["apiVersion"] = "v1";
      s["metadata"] = OJson::object();
      s["status"] = "Success";
      s["details"] = OJson{{"name", name}, {"kind", plural}, {"uid", gone["metadata"]["uid"]}};
      return Send(res, 200, s);
    }
    return Send(res, 200, gone);
  }

  // POST / PUT: validate the body like the server's decoder and validators do.
  if (!body.is_object()) body = OJson::object();
  OJson& md = body["metadata"];
  if (!md.is_object()) md = OJson::object();
  if (md.contains("namespace") && md["namespace"] != ns) {
    return SendStatus(res, StatusBody(400, "BadRequest",
                                      "the namespace of the provided object does not match the "
                                      "namespace sent on the request"));
  }
  if (plural == "secrets" && body.contains("data") && body["data"].is_object()) {
    for (auto& [key, v] : body["data"].items()) {
      int at = v.is_string() ? BadBase64At(v.get<std::string>()) : 0;
      if (at >= 0) {
        return SendStatus(res, StatusBody(400, "BadRequest",
                                          "Secret in version \"v1\" cannot be handled as a Secret: "
                                          "illegal base64 data at input byte " +
                                              std::to_string(at)));
      }
    }
  }
  if (plural == "leases" && body.contains("spec")) {
    for (const char* f : {"acquireTime", "renewTime"}) {
      if (body["spec"].contains(f) && body["spec"][f].is_string() &&
          !IsMicroTime(body["spec"][f].get<std::string>())) {
        std::string v = body["spec"][f];
        return SendStatus(
            res,
            StatusBody(400, "BadRequest",
                       "Lease in version \"v1\" cannot be handled as a Lease: "
                       "parsing time " +
                           Quote(v) + " as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse " +
                           Quote(v.size() > 19 ? v.substr(19) : v) + " as \".000000\""));
      }
    }
  }
  std::string body_name = md.value("name", "");
  if (req.method == "POST") {
    if (body_name.empty()) {
      OJson cause{{"reason", "FieldValueRequired"},
                  {"message", "Required value: name or generateName is required"},
                  {"field", "metadata.name"}};
      OJson d{{"kind", kind->kind}, {"causes", OJson::array({cause})}};
      return SendStatus(res,
                        StatusBody(422, "Invalid",
                                   kind->kind + " \"\" is invalid: metadata.name: Required value: "
                                                "name or generateName is required",
                                   d));
    }
    if (md.contains("resourceVersion") && md["resourceVersion"] != "") {
      return SendStatus(
          res, StatusBody(500, "", "resourceVersion should not be set on objects to be created"));
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (kind->namespaced) {
      auto& namespaces = objects_["namespaces"];
      auto it = namespaces.find("/" + ns);
      if (it == namespaces.end() && options_.require_namespaces) {
        // Sample 092: the Status names the namespace, not the object.
        OJson d{{"name", ns}, {"kind", "namespaces"}};
        return SendStatus(res,
                          StatusBody(404, "NotFound", "namespaces " + Quote(ns) + " not found", d));
      }
      if (it != namespaces.end() && Terminating(it->second)) {
        // Sample 088.
        OJson cause{{"reason", "NamespaceTerminating"},
                    {"message", "namespace " + ns + " is being terminated"},
                    {"field", "metadata.namespace"}};
        OJson d{{"name", body_name}, {"kind", plural}, {"causes", OJson::array({cause})}};
        return SendStatus(res, StatusBody(403, "Forbidden",
                                          kind->Qualified() + " " + Quote(body_name) +
                                              " is forbidden: unable to create new content in "
                                              "namespace " +
                                              ns + " because it is being terminated",
                                          d));
      }
    }
    if (objects_[plural].contains(ns + "/" + body_name)) {
      return SendStatus(res,
                        StatusBody(409, "AlreadyExists",
                                   kind->Qualified() + " " + Quote(body_name) + " already exists",
                                   Details(body_name, *kind)));
    }
    return Send(res, 201, StoreLocked(plural, ns, body, true));
  }

  // PUT
  if (body_name != name) {
    return SendStatus(res, StatusBody(400, "BadRequest",
                                      "the name of the object (" + body_name +
                                          ") does not match the name on the URL (" + name + ")"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto& bucket = objects_[plural];
  auto it = bucket.find(ns + "/" + name);
  if (it == bucket.end())
    return SendStatus(res, StatusBody(404, "NotFound", not_found, Details(name, *kind)));
  std::string want = md.value("resourceVersion", "");
  if (!want.empty() && want != it->second["metadata"]["resourceVersion"]) {
    return SendStatus(
        res,
        StatusBody(409, "Conflict",
                   "Operation cannot be fulfilled on " + kind->Qualified() + " " + Quote(name) +
                       ": the object has been modified; please apply your changes "
                       "to the latest version and try again",
                   Details(name, *kind)));
  }
  if (plural == "secrets" && body.value("type", "Opaque") != it->second.value("type", "Opaque")) {
    std::string t = body.value("type", "Opaque");
    std::string msg = "Invalid value: " + Quote(t) + ": field is immutable";
    OJson cause{{"reason", "FieldValueInvalid"}, {"message", msg}, {"field", "type"}};
    OJson d{{"name", name}, {"kind", kind->kind}, {"causes", OJson::array({cause})}};
    return SendStatus(res,
                      StatusBody(422, "Invalid",
                                 kind->kind + " " + Quote(name) + " is invalid: type: " + msg, d));
  }
  return Send(res, 200, StoreLocked(plural, ns, body, false));
}

void FakeApiServer::HandleTokenReview(const httplib::Request& req, httplib::Response& res) {
  OJson body = OJson::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("spec") || !body["spec"].contains("token")) {
    return SendStatus(res, StatusBody(400, "BadRequest", "TokenReview spec.token is required"));
  }
  std::string token = body["spec"]["token"];
  std::vector<std::string> wanted;
  if (body["spec"].contains("audiences") && body["spec"]["audiences"].is_array()) {
    for (const auto& a : body["spec"]["audiences"]) wanted.push_back(a);
  }
  const bool default_audience = wanted.empty();
  if (default_audience) wanted.push_back("https://kubernetes.default.svc.cluster.local");
  OJson out;
  out["kind"] = "TokenReview";
  out["apiVersion"] = "authentication.k8s.io/v1";
  out["metadata"] = OJson{{"creationTimestamp", nullptr}};
  out["spec"] = body["spec"];
  OJson status;
  std::optional<TokenIdentity> id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = reviewable_.find(token);
    if (it != reviewable_.end()) id = it->second;
  }
  std::vector<std::string> overlap;
  if (id) {
    for (const auto& a : id->audiences) {
      if (std::find(wanted.begin(), wanted.end(), a) != wanted.end()) overlap.push_back(a);
    }
  }
  if (id && !overlap.empty()) {
    status["authenticated"] = true;
    status["user"] = OJson{{"username", id->username}, {"uid", id->uid}, {"groups", id->groups}};
    if (!id->extra.empty()) status["user"]["extra"] = id->extra;
    status["audiences"] = overlap;
  } else {
    status["user"] = OJson::object();
    if (!id) {
      status["error"] = "invalid bearer token";
    } else {
      auto list = [](const std::vector<std::string>& v) {
        std::string s = "[";
        for (size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + Quote(v[i]);
        return s + "]";
      };
      status["error"] = "[invalid bearer token, token audiences " + list(id->audiences) +
                        " is invalid for the target audiences " + list(wanted) + "]";
    }
  }
  out["status"] = status;
  Send(res, 201, out);
}

void FakeApiServer::HandleWatch(const std::string& plural, const std::string& ns,
                                const httplib::Request& req, httplib::Response& res) {
  std::string bad;
  auto sel = ParseSelector(plural, req.get_param_value("fieldSelector"), &bad);
  if (!sel)
    return SendStatus(res, StatusBody(400, "BadRequest", "field label not supported: " + bad));
  const std::string rv_text = req.get_param_value("resourceVersion");
  int64_t from = 0;
  if (!rv_text.empty()) {
    char* end = nullptr;
    from = std::strtoll(rv_text.c_str(), &end, 10);
    if (*end != '\0' || from < 0) {
      return SendStatus(res, StatusBody(500, "",
                                        "resourceVersion: Invalid value: " + Quote(rv_text) +
                                            ": strconv.ParseUint: parsing " + Quote(rv_text) +
                                            ": invalid syntax"));
    }
  }
  int timeout = 1800;
  if (req.has_param("timeoutSeconds"))
    timeout = std::max(1, std::atoi(req.get_param_value("timeoutSeconds").c_str()));
  const bool bookmarks = req.get_param_value("allowWatchBookmarks") == "true";
  const Kind& kind = *KindByPlural(plural);

  struct State {
    int64_t last = 0;
    std::string pending;
    bool finish_after_pending = false;
    std::chrono::steady_clock::time_point deadline, next_bookmark;
    uint64_t drop_gen = 0, expire_gen = 0;
  };
  auto st = std::make_shared<State>();
  auto line = [](const std::string& type, const OJson& object) {
    OJson ev;
    ev["type"] = type;
    ev["object"] = object;
    return ev.dump() + "\n";
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    st->drop_gen = drop_generation_;
    st->expire_gen = expire_generation_;
    if (from > 0 && from < oldest_rv_) {
      // Sample 038: 200 OK, one ERROR event, end of stream.
      st->pending = line("ERROR", StatusBody(410, "Expired",
                                             "too old resource version: " + std::to_string(from) +
                                                 " (" + std::to_string(oldest_rv_) + ")"));
      st->finish_after_pending = true;
    } else if (from == 0) {
      // Sample 037: synthetic ADDED events for what exists now.
      for (const auto& [key, o] : objects_[plural]) {
        if (!ns.empty() && key.rfind(ns + "/", 0) != 0) continue;
        if (sel->Matches(o)) st->pending += line("ADDED", o);
      }
      st->last = rv_;
    } else {
      st->last = from;
    }
  }
  auto now = std::chrono::steady_clock::now();
  st->deadline = now + std::chrono::seconds(timeout);
  st->next_bookmark = now + options_.bookmark_interval;
  ++open_watches_;
  res.status = 200;
  res.set_header("Cache-Control", "no-cache, private");
  res.set_chunked_content_provider(
      "application/json",
      [this, st, sel = *sel, ns, plural, bookmarks, line, &kind](size_t, httplib::DataSink& sink) {
        std::string out;
        bool done = false;
        {
          std::unique_lock<std::mutex> lock(mu_);
          out.swap(st->pending);
          if (st->finish_after_pending) {
            done = true;
          } else {
            if (out.empty()) {
              events_cv_.wait_for(lock, 100ms, [&] {
                return stopping_ || drop_generation_ != st->drop_gen ||
                       expire_generation_ != st->expire_gen ||
                       (!events_.empty() && events_.back().rv > st->last);
              });
            }
            if (stopping_ || drop_generation_ != st->drop_gen) return false;  // abrupt close
            if (expire_generation_ != st->expire_gen) {
              out +=
                  line("ERROR", StatusBody(410, "Expired",
                                           "too old resource version: " + std::to_string(st->last) +
                                               " (" + std::to_string(oldest_rv_) + ")"));
              done = true;
            } else {
              auto it = std::upper_bound(events_.begin(), events_.end(), st->last,
                                         [](int64_t rv, const Event& e) { return rv < e.rv; });
              for (; it != events_.end(); ++it) {
                st->last = it->rv;
                if (it->plural != plural) continue;
                const OJson& md = it->object["metadata"];
                if (!ns.empty() && md.value("namespace", "") != ns) continue;
                if (!sel.Matches(it->object)) continue;
                out += line(it->type, it->object);
              }
              st->last = std::max(st->last, rv_);
              auto now = std::chrono::steady_clock::now();
              if (bookmarks && now >= st->next_bookmark) {
                OJson b;
                b["kind"] = kind.kind;
                b["apiVersion"] = kind.api_version;
                b["metadata"] = OJson{{"resourceVersion", std::to_string(st->last)},
                                      {"creationTimestamp", nullptr}};
                out += line("BOOKMARK", b);
                st->next_bookmark = now + options_.bookmark_interval;
              }
              if (now >= st->deadline) done = true;
            }
          }
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        if (done) sink.done();
        return true;
      },
      [this](bool) { --open_watches_; });
}

Result<TestTls> MakeTestTls() {
  auto now = istioca::SystemClock::Get().Now();
  ASSIGN_OR_RETURN(pki::PrivateKey ca_key, pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  ASSIGN_OR_RETURN(pki::Certificate ca,
                   pki::MakeSelfSignedRoot(
                       ca_key, {"fake-apiserver test CA", std::chrono::hours(24 * 30)}, now));
  ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Signer signer{ca, ca_key};
  ASSIGN_OR_RETURN(
      pki::Certificate cert,
      pki::IssueLeaf(signer, key.get(), {{}, {"localhost"}, std::chrono::hours(24 * 7)}, now));
  ASSIGN_OR_RETURN(SecretString key_pem, key.ToPem());
  return TestTls{ca.ToPem(), cert.ToPem(), key_pem.str()};
}

std::string KubeconfigYaml(const std::string& server, const std::string& ca_pem,
                           const std::string& token) {
  const std::string b64 = Base64Encode(ca_pem);
  std::string y =
      "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: " + server +
      "\n";
  if (!ca_pem.empty()) y += "    certificate-authority-data: " + b64 + "\n";
  y += "users:\n- name: fake-admin\n  user:\n    token: " + token + "\n";
  y += "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake-admin\n";
  y += "current-context: fake\n";
  return y;
}

}  // namespace istioca::fakeapi
