#include "k8s/http_api.h"

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/log.h"
#include "base/secret.h"
#include "k8s/errors.h"
#include "k8s/objects.h"
#include "k8s/rate.h"

namespace istioca::k8s {
namespace {

using ClientPtr = std::unique_ptr<httplib::ClientImpl>;

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

std::string PercentEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

// Holds the bearer token; a token file is re-read once a minute so rotated bound tokens
// are picked up without a restart (client-go does the same).
class TokenSource {
 public:
  TokenSource(std::string token, std::string file)
      : token_(std::move(token)), file_(std::move(file)) {}
  std::string Get() {
    if (file_.empty()) return token_;
    std::lock_guard<std::mutex> lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (!read_ || now - read_at_ > std::chrono::minutes(1)) {
      std::ifstream in(file_);
      std::ostringstream ss;
      ss << in.rdbuf();
      std::string t = ss.str();
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      if (in && !t.empty()) token_ = t;  // keep the last good token if the file is mid-rotation
      read_ = true;
      read_at_ = now;
    }
    return token_;
  }

 private:
  std::mutex mu_;
  std::string token_;
  std::string file_;
  bool read_ = false;
  std::chrono::steady_clock::time_point read_at_;
};

}  // namespace

std::string EncodeQuery(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (!q.empty()) q += '&';
    q += k + "=" + PercentEncode(v);
  }
  return q;
}

struct HttpApi::Impl {
  RestConfig config;
  HttpApiOptions options;
  ServerUrl url;
  std::unique_ptr<X509, X509Free> client_cert;
  std::unique_ptr<EVP_PKEY, PkeyFree> client_key;
  std::vector<std::unique_ptr<X509, X509Free>> roots;
  TokenSource tokens{"", ""};
  TokenBucket bucket{0, 0};
  std::mutex pool_mu;
  std::vector<ClientPtr> pool;
  std::atomic<uint64_t> sent{0};
  std::shared_ptr<spdlog::logger> log = Logger("k8s");

  Impl(const RestConfig& c, const HttpApiOptions& o, ServerUrl u)
      : config(c),
        options(o),
        url(std::move(u)),
        tokens(c.token, c.token_file),
        bucket(c.qps, c.burst, o.clock != nullptr ? *o.clock : SystemClock::Get()) {}

  ClientPtr NewClient(std::chrono::seconds read_timeout) {
    ClientPtr client;
    if (url.tls) {
      auto ssl = client_cert ? std::make_unique<httplib::SSLClient>(
                                   url.host, url.port, client_cert.get(), client_key.get())
                             : std::make_unique<httplib::SSLClient>(url.host, url.port);
      if (config.insecure_skip_verify) {
        ssl->enable_server_certificate_verification(false);
      } else if (!roots.empty()) {
        X509_STORE* store = X509_STORE_new();  // owned by the client's SSL_CTX from here on
        for (const auto& r : roots) X509_STORE_add_cert(store, r.get());
        ssl->set_ca_cert_store(store);
      }
      client = std::move(ssl);
    } else {
      client = std::make_unique<httplib::ClientImpl>(url.host, url.port);
    }
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);  // small requests: no 40 ms Nagle/delayed-ACK stalls
    client->set_connection_timeout(std::chrono::seconds(5));
    client->set_read_timeout(read_timeout);
    client->set_write_timeout(std::chrono::seconds(30));
    return client;
  }

  ClientPtr Borrow() {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (!pool.empty()) {
        ClientPtr c = std::move(pool.back());
        pool.pop_back();
        return c;
      }
    }
    return NewClient(options.request_timeout);
  }
  void Return(ClientPtr c) {
    std::lock_guard<std::mutex> lock(pool_mu);
    if (pool.size() < 16) pool.push_back(std::move(c));
  }

  httplib::Headers Headers() {
    httplib::Headers h{{"Accept", "application/json"}, {"User-Agent", config.user_agent}};
    std::string token = tokens.Get();
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    return h;
  }

  void Pace() {
    auto wait = bucket.Reserve();
    if (wait > SteadyDuration::zero()) std::this_thread::sleep_for(wait);
  }

  // One request with retries on transient failures; returns the body of a 2xx answer.
  Result<std::string> Do(const std::string& method, const std::string& path,
                         const std::string& body) {
    Backoff backoff(options.initial_backoff, options.max_backoff, kBackoffJitter);
    Status last;
    for (int attempt = 0; attempt < options.max_attempts; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(backoff.Next());
      Pace();
      ClientPtr client = Borrow();
      httplib::Request req;
      req.method = method;
      req.path = path;
      req.headers = Headers();
      if (!body.empty()) {
        req.body = body;
        req.set_header("Content-Type", "application/json");
      }
      ++sent;
      httplib::Result res = client->send(req);
      Cleanse(req.body.data(), req.body.size());  // a Secret's keys, base64
      if (!res) {
        last = TransportError(httplib::to_string(res.error()));
        // The connection is suspect; drop it rather than return it to the pool.
      } else {
        Return(std::move(client));
        if (res->status >= 200 && res->status < 300) return std::move(res->body);
        last = StatusFromHttp(res->status, res->body);
      }
      if (!IsTransient(last)) return last;
      log->debug("kube request failed, will retry method={} path={} attempt={} error={}", method,
                 path, attempt + 1, last.message());
    }
    return last;
  }

  Result<Json> DoJson(const std::string& method, const std::string& path, const std::string& body) {
    ASSIGN_OR_RETURN(std::string text, Do(method, path, body));
    Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    Cleanse(text.data(), text.size());
    if (j.is_discarded())
      return Internal("kubernetes API returned malformed JSON", method + " " + path);
    return j;
  }
};

HttpApi::HttpApi(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpApi::~HttpApi() = default;

Result<std::unique_ptr<HttpApi>> HttpApi::Create(const RestConfig& config,
                                                 const HttpApiOptions& options) {
  ASSIGN_OR_RETURN(ServerUrl url, ParseServerUrl(config.server));
  auto impl = std::make_unique<Impl>(config, options, url);
  if (!config.ca_pem.empty()) {
    BIO* bio = BIO_new_mem_buf(config.ca_pem.data(), static_cast<int>(config.ca_pem.size()));
    while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) impl->roots.emplace_back(x);
    BIO_free(bio);
    ERR_clear_error();  // the loop ends on "no start line"
    if (impl->roots.empty()) return InvalidArgument("kubernetes CA data holds no PEM certificate");
  }
  if (!config.client_cert_pem.empty()) {
    BIO* bio = BIO_new_mem_buf(config.client_cert_pem.data(),
                               static_cast<int>(config.client_cert_pem.size()));
    impl->client_cert.reset(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    bio = BIO_new_mem_buf(config.client_key_pem.data(),
                          static_cast<int>(config.client_key_pem.size()));
    impl->client_key.reset(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    ERR_clear_error();
    if (!impl->client_cert || !impl->client_key) {
      return InvalidArgument("kubernetes client certificate or key is not valid PEM");
    }
  }
  return std::unique_ptr<HttpApi>(new HttpApi(std::move(impl)));
}

Result<std::unique_ptr<Api>> Connect(const std::string& kubeconfig) {
  Result<RestConfig> config = kubeconfig.empty()
                                  ? InClusterConfig([](const char* k) { return std::getenv(k); })
                                  : LoadKubeconfig(kubeconfig);
  if (!config.ok()) return config.status();
  ASSIGN_OR_RETURN(std::unique_ptr<HttpApi> api, HttpApi::Create(*config));
  return std::unique_ptr<Api>(std::move(api));
}

uint64_t HttpApi::requests_sent() const { return impl_->sent.load(); }

namespace {

Json WithKind(const Resource& r, const std::string& ns, Json object) {
  if (!object.contains("apiVersion")) object["apiVersion"] = r.api_version;
  if (!object.contains("kind")) object["kind"] = r.kind;
  if (r.namespaced && !ns.empty() && !object["metadata"].contains("namespace")) {
    object["metadata"]["namespace"] = ns;
  }
  return object;
}

std::string NameOf(const Json& object) {
  if (object.contains("metadata") && object["metadata"].contains("name") &&
      object["metadata"]["name"].is_string()) {
    return object["metadata"]["name"];
  }
  return "";
}

}  // namespace

Result<Json> HttpApi::Get(const Resource& r, const std::string& ns, const std::string& name) {
  return impl_->DoJson("GET", r.Path(ns, name), "");
}

// The request text of a write is wiped once sent: a Secret's body carries its keys.
Result<Json> HttpApi::Create(const Resource& r, const std::string& ns, const Json& object) {
  Json full = WithKind(r, ns, object);
  std::string text = full.dump();
  CleanseJson(full);
  Result<Json> out = impl_->DoJson("POST", r.Path(ns), text);
  Cleanse(text.data(), text.size());
  return out;
}

Result<Json> HttpApi::Update(const Resource& r, const std::string& ns, const Json& object) {
  std::string name = NameOf(object);
  if (name.empty()) return InvalidArgument("update of a " + r.kind + " without metadata.name");
  Json full = WithKind(r, ns, object);
  std::string text = full.dump();
  CleanseJson(full);
  Result<Json> out = impl_->DoJson("PUT", r.Path(ns, name), text);
  Cleanse(text.data(), text.size());
  return out;
}

Status HttpApi::Delete(const Resource& r, const std::string& ns, const std::string& name,
                       const std::string& precondition_rv) {
  std::string body;
  if (!precondition_rv.empty()) {
    body = Json{{"kind", "DeleteOptions"},
                {"apiVersion", "v1"},
                {"preconditions", {{"resourceVersion", precondition_rv}}}}
               .dump();
  }
  return impl_->Do("DELETE", r.Path(ns, name), body).status();
}

Result<ListPage> HttpApi::List(const Resource& r, const std::string& ns, const ListOptions& o) {
  std::vector<std::pair<std::string, std::string>> q;
  if (!o.field_selector.empty()) q.emplace_back("fieldSelector", o.field_selector);
  if (!o.label_selector.empty()) q.emplace_back("labelSelector", o.label_selector);
  if (o.limit > 0) q.emplace_back("limit", std::to_string(o.limit));
  if (!o.continue_token.empty()) q.emplace_back("continue", o.continue_token);
  if (!o.resource_version.empty()) q.emplace_back("resourceVersion", o.resource_version);
  std::string path = r.Path(ns);
  if (!q.empty()) path += "?" + EncodeQuery(q);
  ASSIGN_OR_RETURN(Json list, impl_->DoJson("GET", path, ""));
  ListPage page;
  const Json& meta = list["metadata"];
  if (meta.is_object()) {
    page.resource_version = meta.value("resourceVersion", "");
    page.continue_token = meta.value("continue", "");
  }
  if (list.contains("items") && list["items"].is_array()) {
    page.items.reserve(list["items"].size());
    for (auto& item : list["items"]) page.items.push_back(std::move(item));
  }
  return page;
}

Status HttpApi::Watch(const Resource& r, const std::string& ns, const WatchOptions& o,
                      const std::function<bool(WatchEvent&&)>& on_event, Cancellation* cancel) {
  std::vector<std::pair<std::string, std::string>> q{{"watch", "1"}};
  if (!o.resource_version.empty()) q.emplace_back("resourceVersion", o.resource_version);
  if (!o.field_selector.empty()) q.emplace_back("fieldSelector", o.field_selector);
  if (!o.label_selector.empty()) q.emplace_back("labelSelector", o.label_selector);
  if (o.bookmarks) q.emplace_back("allowWatchBookmarks", "true");
  q.emplace_back("timeoutSeconds", std::to_string(o.timeout_seconds));
  const std::string path = r.Path(ns) + "?" + EncodeQuery(q);

  impl_->Pace();
  // A watch holds its connection for minutes: it gets its own client, which Cancel() stops.
  ClientPtr client = impl_->NewClient(std::chrono::seconds(o.timeout_seconds + 30));
  int cancel_id = -1;
  if (cancel != nullptr) cancel_id = cancel->OnCancel([&client] { client->stop(); });
  int http_status = 0;
  std::string buffer;
  std::string error_body;
  bool stopped_by_handler = false;
  ++impl_->sent;
  auto res = client->Get(
      path, impl_->Headers(),
      [&](const httplib::Response& resp) {
        http_status = resp.status;
        return true;
      },
      [&](const char* data, size_t len) {
        if (http_status != 200) {
          if (error_body.size() < 65536) error_body.append(data, len);
          return true;
        }
        buffer.append(data, len);
        size_t start = 0;
        for (size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
          Json line = Json::parse(buffer.begin() + start, buffer.begin() + nl, nullptr, false);
          if (line.is_discarded() || !line.is_object()) continue;
          WatchEvent ev{line.value("type", ""), std::move(line["object"])};
          if (!on_event(std::move(ev))) {
            stopped_by_handler = true;
            return false;
          }
        }
        Cleanse(buffer.data(), start);  // consumed events (a Secret's keys among them)
        buffer.erase(0, start);
        return true;
      });
  if (cancel != nullptr) cancel->Remove(cancel_id);
  if (stopped_by_handler || (cancel != nullptr && cancel->cancelled())) return OkStatus();
  if (!res) return TransportError(httplib::to_string(res.error()));
  if (http_status != 200) return StatusFromHttp(http_status, error_body);
  return OkStatus();
}

}  // namespace istioca::k8s
