// grpc_load: a cheap load generator for the real `istio-ca serve` daemon's CreateCertificate
// (modern API, mTLS, EC P-256 CSRs) and for `cfssl serve`'s /api/v1/cfssl/sign, plus the raw
// OpenSSL cost of the crypto both must do (scripts/bench-grpc).
//
//   grpc_load grpc ADDR SECRETS_DIR [options]   mTLS gRPC; channel i authenticates with
//       SECRETS_DIR/istio.load-<i>/{cert-chain,key,root-cert}.pem (istio.load-0 when missing),
//       the secrets `serve --local-dir` issues for service accounts bench/load-<i>
//   grpc_load cfssl HOST:PORT [options]        HTTP/1.1 keep-alive, one call in flight per
//       connection, channels x inflight connections
//   grpc_load crypto [--seconds S]             CPU µs of one ECDSA P-256 (SHA-256) sign and one
//       verify with OpenSSL, each timed in a loop for S/2 seconds
// Options: --channels N (4) --inflight N (8, calls in flight per channel) --seconds S (10)
//   --rate R (0: maximum rate, every finished call starts the next; R > 0: calls scheduled at R
//   per second in total and latency counted from the scheduled time, so a server that falls
//   behind shows it — no coordinated omission) --server-pid PID (report the server's CPU per
//   successful call from /proc/PID/stat over the measured window) --warmup S (1)
//
// One thread drives every channel through one completion queue (gRPC) or one epoll set (HTTP),
// so the generator's own CPU per call stays small: it is printed as client_cpu_us, the time
// (user + system, all threads) this process spent per successful call in the measured window.
// Output: one line of key=value fields; a first error of each kind goes to stderr.
#include <absl/synchronization/mutex.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "base/files.h"
#include "istio/v1/auth/certificate_service.grpc.pb.h"
#include "pki/csr.h"
#include "pki/key.h"

using namespace istioca;
using Steady = std::chrono::steady_clock;

namespace {

template <class T>
T OrDie(Result<T> r) {
  if (!r.ok()) {
    std::cerr << "grpc_load: " << r.status().ToString() << "\n";
    std::exit(1);
  }
  return std::move(r).value();
}

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "grpc_load: " << what << "\n";
  std::exit(1);
}

// The project's file reader (base/files.h); a tool that cannot read its input stops.
std::string Slurp(const std::string& path) { return OrDie(ReadFileToString(path)); }

bool Exists(const std::string& path) { return std::ifstream(path).good(); }

std::vector<std::string> Csrs(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    pki::PrivateKey key = OrDie(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
    pki::CsrOptions o;
    o.organization = "bench";
    out.push_back(OrDie(pki::Csr::Build(key, o)).ToPem());
  }
  return out;
}

double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// utime + stime of another process, in seconds (clock-tick resolution); -1 when unreadable.
double OtherProcessCpuSeconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = s.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream rest(s.substr(paren + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {  // field 3 is the state
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Options {
  int channels = 4;
  int inflight = 8;
  double seconds = 10;
  double rate = 0;
  double warmup = 1;
  int server_pid = 0;
};

// A finished call: its slot, and an error ("" on success).
struct Done {
  int slot;
  std::string error;
};

// What the driver needs from a protocol: a fixed number of slots (calls that may be in flight),
// a way to start call k on a free slot, and a wait for finished calls until a deadline.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual int slots() const = 0;
  virtual void Start(int slot, uint64_t k) = 0;
  virtual void Poll(Steady::time_point deadline, std::vector<Done>* out) = 0;
};

struct RunResult {
  std::vector<double> latencies_ms;
  std::map<std::string, int64_t> errors;  // by first 120 characters of the message
  double elapsed_s = 0;
  double client_cpu_s = 0;
  double server_cpu_s = -1;
};

// Keeps the slots busy for `seconds` (max rate) or starts calls on a schedule (paced), then
// waits for the calls in flight (at most 15 s more).
RunResult Drive(Transport& t, const Options& o, double seconds, double rate) {
  RunResult r;
  r.latencies_ms.reserve(static_cast<size_t>(std::max(1.0, rate) * seconds * 1.2) + 1024);
  const int n = t.slots();
  std::vector<int> free_slots;
  for (int s = n - 1; s >= 0; --s) free_slots.push_back(s);
  std::vector<Steady::time_point> started(static_cast<size_t>(n));
  std::vector<Done> done;
  const double cpu0 = ProcessCpuSeconds();
  const double server0 = OtherProcessCpuSeconds(o.server_pid);
  const auto start = Steady::now();
  const auto end =
      start + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(seconds));
  const auto interval = std::chrono::duration_cast<Steady::duration>(
      std::chrono::duration<double>(rate > 0 ? 1.0 / rate : 0));
  const auto drain_limit = end + std::chrono::seconds(15);
  auto next = start;  // the next scheduled call (paced)
  uint64_t k = 0;
  Steady::time_point last = start;
  for (;;) {
    const auto now = Steady::now();
    if (rate <= 0) {
      while (!free_slots.empty() && now < end) {
        const int s = free_slots.back();
        free_slots.pop_back();
        started[static_cast<size_t>(s)] = now;
        t.Start(s, k++);
      }
    } else {
      // A call whose time has come waits for a free slot; its latency still counts from `next`.
      while (next <= now && next < end && !free_slots.empty()) {
        const int s = free_slots.back();
        free_slots.pop_back();
        started[static_cast<size_t>(s)] = next;
        t.Start(s, k++);
        next += interval;
      }
    }
    const bool idle = static_cast<int>(free_slots.size()) == n;
    if (now >= end && (idle || now >= drain_limit)) break;
    if (rate > 0 && next >= end && idle) break;
    Steady::time_point deadline = end;
    if (now >= end) deadline = drain_limit;
    if (rate > 0 && next < end && !free_slots.empty()) deadline = std::min(deadline, next);
    done.clear();
    t.Poll(deadline, &done);
    if (done.empty()) continue;
    const auto finished = Steady::now();
    last = finished;
    for (const Done& d : done) {
      if (d.error.empty()) {
        r.latencies_ms.push_back(std::chrono::duration<double, std::milli>(
                                     finished - started[static_cast<size_t>(d.slot)])
                                     .count());
      } else {
        const std::string key = d.error.substr(0, 120);
        if (r.errors[key]++ == 0) std::cerr << "grpc_load: error: " << d.error << "\n";
      }
      free_slots.push_back(d.slot);
    }
  }
  r.elapsed_s = std::chrono::duration<double>(std::max(last, end) - start).count();
  r.client_cpu_s = ProcessCpuSeconds() - cpu0;
  const double server1 = OtherProcessCpuSeconds(o.server_pid);
  if (server0 >= 0 && server1 >= 0) r.server_cpu_s = server1 - server0;
  return r;
}

int Report(RunResult r) {
  std::sort(r.latencies_ms.begin(), r.latencies_ms.end());
  auto pct = [&](double p) {
    const auto& a = r.latencies_ms;
    return a.empty() ? 0.0 : a[std::min(a.size() - 1, static_cast<size_t>(p * a.size()))];
  };
  int64_t errors = 0;
  for (const auto& e : r.errors) errors += e.second;
  const double calls = static_cast<double>(r.latencies_ms.size());
  auto per_call_us = [&](double cpu) { return calls > 0 ? 1e6 * cpu / calls : 0.0; };
  std::printf(
      "calls=%zu errors=%lld rate=%.1f/s p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f "
      "client_cpu_us=%.1f",
      r.latencies_ms.size(), static_cast<long long>(errors), calls / r.elapsed_s, pct(0.50),
      pct(0.99), pct(0.999), per_call_us(r.client_cpu_s));
  if (r.server_cpu_s >= 0) std::printf(" server_cpu_us=%.1f", per_call_us(r.server_cpu_s));
  // Refused calls cost the generator too: its CPU per finished call, whatever the answer.
  std::printf(" client_cpu_us_per_finished=%.1f seconds=%.2f\n",
              calls + static_cast<double>(errors) > 0
                  ? 1e6 * r.client_cpu_s / (calls + static_cast<double>(errors))
                  : 0.0,
              r.elapsed_s);
  for (const auto& [what, c] : r.errors) {
    std::printf("error_count=%lld message=%s\n", static_cast<long long>(c), what.c_str());
  }
  std::fflush(stdout);
  return r.latencies_ms.empty() ? 1 : 0;
}

int Run(Transport& t, const Options& o) {
  if (o.warmup > 0) {
    Options w = o;
    w.server_pid = 0;
    RunResult warm = Drive(t, w, o.warmup, 0);  // handshakes and first calls, not measured
    if (warm.latencies_ms.empty()) {
      std::cerr << "grpc_load: no call succeeded during the warm-up\n";
      return Report(std::move(warm));
    }
  }
  return Report(Drive(t, o, o.seconds, o.rate));
}

// --- gRPC: generated stub, async API, one completion queue ---

namespace pb = ::istio::v1::auth;

class GrpcTransport : public Transport {
 public:
  GrpcTransport(const std::string& address, const std::string& secrets, const Options& o)
      : inflight_(o.inflight) {
    for (const std::string& csr : Csrs(64)) {
      requests_.emplace_back();
      requests_.back().set_csr(csr);
      requests_.back().set_validity_duration(3600);
    }
    for (int i = 0; i < o.channels; ++i) {
      std::string dir = secrets + "/istio.load-" + std::to_string(i);
      if (!Exists(dir + "/key.pem")) dir = secrets + "/istio.load-0";
      grpc::SslCredentialsOptions tls;
      tls.pem_root_certs = Slurp(dir + "/root-cert.pem");
      tls.pem_cert_chain = Slurp(dir + "/cert-chain.pem");
      tls.pem_private_key = Slurp(dir + "/key.pem");
      grpc::ChannelArguments args;
      args.SetSslTargetNameOverride("istio-ca");
      args.SetInt("grpc_load.channel", i);      // distinct arguments: a connection of its own
      args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // no retry buffering: a refused call is counted
      auto channel = grpc::CreateCustomChannel(address, grpc::SslCredentials(tls), args);
      if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
        Die("channel " + std::to_string(i) + " did not connect to " + address);
      stubs_.push_back(pb::IstioCertificateService::NewStub(channel));
    }
    calls_.resize(static_cast<size_t>(slots()));
  }
  ~GrpcTransport() override {
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }
  int slots() const override { return static_cast<int>(stubs_.size()) * inflight_; }

  void Start(int slot, uint64_t k) override {
    Call& c = calls_[static_cast<size_t>(slot)];
    c.ctx = std::make_unique<grpc::ClientContext>();
    c.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    c.response.Clear();
    auto& stub = stubs_[static_cast<size_t>(slot) % stubs_.size()];
    c.reader =
        stub->PrepareAsyncCreateCertificate(c.ctx.get(), requests_[k % requests_.size()], &cq_);
    c.reader->StartCall();
    c.reader->Finish(&c.response, &c.status, reinterpret_cast<void*>(static_cast<intptr_t>(slot)));
  }

  void Poll(Steady::time_point deadline, std::vector<Done>* out) override {
    const auto wall = std::chrono::system_clock::now() + (deadline - Steady::now());
    void* tag = nullptr;
    bool ok = false;
    if (cq_.AsyncNext(&tag, &ok, wall) != grpc::CompletionQueue::GOT_EVENT) return;
    const int slot = static_cast<int>(reinterpret_cast<intptr_t>(tag));
    Call& c = calls_[static_cast<size_t>(slot)];
    std::string error;
    if (!ok) {
      error = "completion queue: call failed";
    } else if (!c.status.ok()) {
      error = "code " + std::to_string(c.status.error_code()) + ": " + c.status.error_message();
    } else if (c.response.cert_chain_size() < 1) {
      error = "empty cert_chain";
    }
    c.reader.reset();
    out->push_back({slot, std::move(error)});
  }

 private:
  struct Call {
    std::unique_ptr<grpc::ClientContext> ctx;
    pb::IstioCertificateResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<pb::IstioCertificateResponse>> reader;
  };
  int inflight_;
  grpc::CompletionQueue cq_;
  std::vector<pb::IstioCertificateRequest> requests_;
  std::vector<std::unique_ptr<pb::IstioCertificateService::Stub>> stubs_;
  std::vector<Call> calls_;
};

// --- HTTP/1.1 keep-alive for cfssl: non-blocking sockets, one epoll set, a timerfd ---

class HttpTransport : public Transport {
 public:
  HttpTransport(const std::string& hostport, const Options& o) {
    const size_t colon = hostport.rfind(':');
    if (colon == std::string::npos) Die("cfssl wants HOST:PORT");
    host_ = hostport.substr(0, colon);
    port_ = std::stoi(hostport.substr(colon + 1));
    for (const std::string& csr : Csrs(64)) {
      const std::string body = nlohmann::json{{"certificate_request", csr}}.dump();
      requests_.push_back("POST /api/v1/cfssl/sign HTTP/1.1\r\nHost: " + hostport +
                          "\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body);
    }
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epoll_ < 0 || timer_ < 0) Die("epoll/timerfd: " + std::string(std::strerror(errno)));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = ~0ULL;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, timer_, &ev);
    conns_.resize(static_cast<size_t>(o.channels * o.inflight));
    for (size_t i = 0; i < conns_.size(); ++i) Connect(static_cast<int>(i));
  }
  ~HttpTransport() override {
    for (auto& c : conns_) {
      if (c.fd >= 0) close(c.fd);
    }
    close(timer_);
    close(epoll_);
  }
  int slots() const override { return static_cast<int>(conns_.size()); }

  void Start(int slot, uint64_t k) override {
    Conn& c = conns_[static_cast<size_t>(slot)];
    if (c.fd < 0) Connect(slot);
    c.in.clear();
    const std::string& req = requests_[k % requests_.size()];
    size_t off = 0;
    while (off < req.size()) {
      const ssize_t w = send(c.fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (w > 0) {
        off += static_cast<size_t>(w);
      } else if (w < 0 && errno == EAGAIN) {
        pollfd p{c.fd, POLLOUT, 0};
        poll(&p, 1, 1000);
      } else {
        failed_.push_back({slot, "send: " + std::string(std::strerror(errno))});
        Reset(slot);
        return;
      }
    }
  }

  void Poll(Steady::time_point deadline, std::vector<Done>* out) override {
    if (!failed_.empty()) {
      out->insert(out->end(), failed_.begin(), failed_.end());
      failed_.clear();
      return;
    }
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::max(deadline, Steady::now() + std::chrono::microseconds(1)).time_since_epoch())
            .count();
    itimerspec spec{};
    spec.it_value.tv_sec = ns / 1000000000;
    spec.it_value.tv_nsec = ns % 1000000000;
    timerfd_settime(timer_, TFD_TIMER_ABSTIME, &spec, nullptr);
    epoll_event events[64];
    const int n = epoll_wait(epoll_, events, 64, -1);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == ~0ULL) {
        uint64_t expirations;
        [[maybe_unused]] ssize_t r = read(timer_, &expirations, sizeof expirations);
        continue;
      }
      const int slot = static_cast<int>(events[i].data.u64);
      ReadFrom(slot, out);
    }
  }

 private:
  struct Conn {
    int fd = -1;
    std::string in;
  };

  void Connect(int slot) {
    Conn& c = conns_[static_cast<size_t>(slot)];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    if (inet_pton(AF_INET, host_ == "localhost" ? "127.0.0.1" : host_.c_str(), &addr.sin_addr) != 1)
      Die("cfssl: want an IPv4 address, got " + host_);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      Die("connect " + host_ + ":" + std::to_string(port_) + ": " + std::strerror(errno));
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // else 40 ms delayed ACKs
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(slot);
    epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
  }

  void Reset(int slot) {
    Conn& c = conns_[static_cast<size_t>(slot)];
    if (c.fd >= 0) close(c.fd);  // also leaves the epoll set
    c.fd = -1;
    c.in.clear();
  }

  void ReadFrom(int slot, std::vector<Done>* out) {
    Conn& c = conns_[static_cast<size_t>(slot)];
    char buf[16384];
    for (;;) {
      const ssize_t r = recv(c.fd, buf, sizeof buf, 0);
      if (r > 0) {
        c.in.append(buf, static_cast<size_t>(r));
        continue;
      }
      if (r < 0 && errno == EAGAIN) break;
      out->push_back({slot, r == 0 ? "connection closed by the server"
                                   : "recv: " + std::string(std::strerror(errno))});
      Reset(slot);
      return;
    }
    const size_t header_end = c.in.find("\r\n\r\n");
    if (header_end == std::string::npos) return;
    std::string head = c.in.substr(0, header_end);
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    const size_t body_at = header_end + 4;
    std::string body;
    const size_t cl = head.find("content-length:");
    if (cl != std::string::npos) {
      const size_t len = std::stoul(head.substr(cl + 15));
      if (c.in.size() < body_at + len) return;
      body = c.in.substr(body_at, len);
    } else if (head.find("transfer-encoding: chunked") != std::string::npos) {
      if (c.in.size() < 5 || c.in.compare(c.in.size() - 5, 5, "0\r\n\r\n") != 0) return;
      body = c.in.substr(body_at);
    } else {
      out->push_back({slot, "response without a length: " + head.substr(0, 100)});
      Reset(slot);
      return;
    }
    std::string error;
    if (head.compare(0, 12, "http/1.1 200") != 0) {
      error = head.substr(0, head.find('\r')) + " " + body.substr(0, 200);
    } else if (body.find("\"success\":true") == std::string::npos) {
      error = body.substr(0, 200);
    }
    c.in.clear();
    out->push_back({slot, std::move(error)});
  }

  std::string host_;
  int port_ = 0;
  int epoll_ = -1;
  int timer_ = -1;
  std::vector<std::string> requests_;
  std::vector<Conn> conns_;
  std::vector<Done> failed_;
};

// --- raw crypto: what every CSR call must at least cost ---

int Crypto(double seconds) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_PKEY_CTX* signer = key ? EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr) : nullptr;
  EVP_PKEY_CTX* verifier = key ? EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr) : nullptr;
  if (sha256 == nullptr || signer == nullptr || verifier == nullptr ||
      EVP_PKEY_sign_init(signer) != 1 || EVP_PKEY_verify_init(verifier) != 1)
    Die("OpenSSL: cannot set up P-256 signing");
  // The floor, as `openssl speed ecdsap256` measures it plus the hashing: contexts made once,
  // each call hashes (SHA-256) and signs or verifies. Sizes: a leaf's TBSCertificate, a CSR's
  // CertificationRequestInfo.
  const std::string tbs(420, 'x'), info(200, 'y');
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  std::vector<unsigned char> sig(static_cast<size_t>(EVP_PKEY_get_size(key)));
  size_t sig_len = sig.size();
  auto sign_once = [&](const std::string& data) {
    sig_len = sig.size();
    if (EVP_Digest(data.data(), data.size(), digest, &digest_len, sha256, nullptr) != 1 ||
        EVP_PKEY_sign(signer, sig.data(), &sig_len, digest, digest_len) != 1)
      Die("EVP_PKEY_sign failed");
  };
  sign_once(info);
  const std::vector<unsigned char> info_sig(sig.begin(), sig.begin() + static_cast<long>(sig_len));
  auto loop = [&](auto&& op) {
    const double cpu0 = ProcessCpuSeconds();
    int64_t n = 0;
    while (ProcessCpuSeconds() - cpu0 < seconds / 2) {
      for (int i = 0; i < 100; ++i) op();
      n += 100;
    }
    return 1e6 * (ProcessCpuSeconds() - cpu0) / static_cast<double>(n);
  };
  const double sign_us = loop([&] { sign_once(tbs); });
  const double verify_us = loop([&] {
    if (EVP_Digest(info.data(), info.size(), digest, &digest_len, sha256, nullptr) != 1 ||
        EVP_PKEY_verify(verifier, info_sig.data(), info_sig.size(), digest, digest_len) != 1)
      Die("EVP_PKEY_verify failed");
  });
  EVP_PKEY_CTX_free(verifier);
  EVP_PKEY_CTX_free(signer);
  EVP_MD_free(sha256);
  EVP_PKEY_free(key);
  std::printf("sign_us=%.1f verify_us=%.1f raw_us=%.1f\n", sign_us, verify_us, sign_us + verify_us);
  return 0;
}

[[noreturn]] void Usage() {
  std::cerr << "usage: grpc_load grpc ADDR SECRETS_DIR [options] | cfssl HOST:PORT [options] | "
               "crypto [--seconds S]\n  options: --channels N --inflight N --seconds S --rate R "
               "--server-pid PID --warmup S\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil keeps Mutex deadlock detection on (a lock graph updated on every
  // acquisition inside gRPC); a load generator has no use for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.empty()) Usage();
  const std::string mode = a[0];
  const size_t positional = mode == "grpc" ? 3 : mode == "cfssl" ? 2 : mode == "crypto" ? 1 : 0;
  if (positional == 0 || a.size() < positional) Usage();
  Options o;
  for (size_t i = positional; i < a.size(); i += 2) {
    if (i + 1 >= a.size()) Usage();
    const std::string& f = a[i];
    const std::string& v = a[i + 1];
    if (f == "--channels")
      o.channels = std::stoi(v);
    else if (f == "--inflight")
      o.inflight = std::stoi(v);
    else if (f == "--seconds")
      o.seconds = std::stod(v);
    else if (f == "--rate")
      o.rate = std::stod(v);
    else if (f == "--warmup")
      o.warmup = std::stod(v);
    else if (f == "--server-pid")
      o.server_pid = std::stoi(v);
    else
      Usage();
  }
  if (o.channels < 1 || o.inflight < 1 || o.seconds <= 0) Usage();
  if (mode == "crypto") return Crypto(o.seconds);
  if (mode == "grpc") {
    GrpcTransport t(a[1], a[2], o);
    return Run(t, o);
  }
  HttpTransport t(a[1], o);
  return Run(t, o);
}
