// grpc_load: a load generator for the CSR service, and for `cfssl serve` for comparison
// (scripts/bench-grpc).
//
//   grpc_load serve DIR N            CA + gRPC server on 127.0.0.1:0; writes DIR/root-cert.pem
//                                    and N client identities (client-<i>.pem/.key); prints
//                                    "port=P"; serves until stdin closes; a "metrics" line
//                                    on stdin prints the Prometheus metrics
//   grpc_load grpc ADDR DIR N SECONDS [RATE]   N mTLS connections (one identity each) calling
//                                    CreateCertificate with precomputed CSRs
//   grpc_load cfssl HOST:PORT N SECONDS [RATE] N keep-alive HTTP connections calling cfssl's
//                                    /api/v1/cfssl/sign with the same kind of CSRs
// Without RATE each connection calls back to back (maximum throughput); with RATE the calls
// are scheduled at RATE per second in total and latency counts from the scheduled time, so a
// server that falls behind shows it (no coordinated omission).
// Output: one line "calls=… errors=… rate=…/s p50_ms=… p99_ms=… client_cpu_us=…", the last
// being this load generator's own CPU time (user + system) per successful call: on a machine
// where client and server share the cores, it is what the client takes from the server.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/log.h"
#include "ca/grpc/server.h"
#include "istio/v1/auth/certificate_service.grpc.pb.h"
#include "pki/csr.h"
#include "pki/issue.h"

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

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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

int Serve(const std::string& dir, int n) {
  (void)ConfigureLogging("warn", false);
  const Clock& clock = SystemClock::Get();
  ca::Authority authority(ca::IssuancePolicy{}, clock);
  pki::PrivateKey root_key = OrDie(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate root = OrDie(pki::MakeSelfSignedRoot(
      root_key, {"cluster.local", std::chrono::hours(24 * 365)}, clock.Now()));
  authority.SetBundle(std::make_shared<ca::CaBundle>(ca::CaBundle{{root, root_key}, {}, {root}}));
  std::ofstream(dir + "/root-cert.pem") << root.ToPem();
  for (int i = 0; i < n; ++i) {
    pki::PrivateKey key = OrDie(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
    auto c = OrDie(authority.Sign(
        key.get(), {"spiffe://cluster.local/ns/bench/sa/client-" + std::to_string(i)}, {},
        std::chrono::hours(2)));
    std::ofstream(dir + "/client-" + std::to_string(i) + ".pem") << c.CertChainPem();
    std::ofstream(dir + "/client-" + std::to_string(i) + ".key") << OrDie(key.ToPem()).str();
  }
  ca::GrpcServerOptions options;
  options.listen_address = "127.0.0.1:0";
  // A benchmark drives few identities hard; the per-identity limit would measure itself.
  options.limits.per_identity_qps = 1e9;
  options.limits.per_identity_burst = 1e9;
  MetricsRegistry metrics;
  auto server = OrDie(ca::GrpcServer::Start(authority, nullptr, options, metrics, clock));
  std::cout << "port=" << server->port() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "metrics") std::cout << metrics.Render() << std::flush;
  }
  server->Stop();
  return 0;
}

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

struct Stats {
  std::vector<double> latencies_ms;
  int64_t errors = 0;
  std::string first_error;
};

// Runs `call` on `n` threads for `seconds`, paced at `rate` in total when rate > 0.
template <class MakeCaller>
int Drive(int n, double seconds, double rate, MakeCaller make_caller) {
  std::vector<Stats> stats(n);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  Steady::time_point start;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      auto call = make_caller(i);  // connects and warms up before the clock starts
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      const auto end = start + std::chrono::duration_cast<Steady::duration>(
                                   std::chrono::duration<double>(seconds));
      const auto interval = rate > 0 ? std::chrono::duration_cast<Steady::duration>(
                                           std::chrono::duration<double>(n / rate))
                                     : Steady::duration::zero();
      // Stagger paced threads so that their calls interleave.
      auto scheduled = start + interval * i / n;
      for (int64_t k = 0;; ++k) {
        if (rate > 0) {
          if (scheduled >= end) break;
          std::this_thread::sleep_until(scheduled);
        }
        const auto t0 = rate > 0 ? scheduled : Steady::now();
        if (t0 >= end) break;
        std::string err = call(k);
        const auto t1 = Steady::now();
        if (err.empty()) {
          stats[i].latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(t1 - t0).count());
        } else {
          if (stats[i].errors++ == 0) stats[i].first_error = err;
        }
        scheduled += interval;
      }
    });
  }
  while (ready.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double cpu_before = ProcessCpuSeconds();
  start = Steady::now();
  go.store(true);
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Steady::now() - start).count();
  const double cpu = ProcessCpuSeconds() - cpu_before;
  std::vector<double> all;
  int64_t errors = 0;
  std::string first_error;
  for (auto& s : stats) {
    all.insert(all.end(), s.latencies_ms.begin(), s.latencies_ms.end());
    errors += s.errors;
    if (first_error.empty()) first_error = s.first_error;
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  std::printf("calls=%zu errors=%lld rate=%.1f/s p50_ms=%.3f p99_ms=%.3f client_cpu_us=%.0f\n",
              all.size(), static_cast<long long>(errors), all.size() / elapsed, pct(0.50),
              pct(0.99), all.empty() ? 0.0 : 1e6 * cpu / static_cast<double>(all.size()));
  if (!first_error.empty()) std::fprintf(stderr, "first error: %s\n", first_error.c_str());
  return all.empty() ? 1 : 0;
}

int RunGrpc(const std::string& address, const std::string& dir, int n, double seconds,
            double rate) {
  namespace pb = ::istio::v1::auth;
  const std::vector<std::string> csrs = Csrs(64);
  const std::string roots = Slurp(dir + "/root-cert.pem");
  return Drive(n, seconds, rate, [&](int i) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = roots;
    tls.pem_cert_chain = Slurp(dir + "/client-" + std::to_string(i) + ".pem");
    tls.pem_private_key = Slurp(dir + "/client-" + std::to_string(i) + ".key");
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("istio-ca");
    args.SetInt("bench-connection", i);  // one connection per identity, never shared
    auto channel = grpc::CreateCustomChannel(address, grpc::SslCredentials(tls), args);
    std::shared_ptr<pb::IstioCertificateService::Stub> stub =
        pb::IstioCertificateService::NewStub(channel);
    auto call = [stub, &csrs, i](int64_t k) -> std::string {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      pb::IstioCertificateRequest req;
      req.set_csr(csrs[(k + i) % csrs.size()]);
      pb::IstioCertificateResponse resp;
      grpc::Status s = stub->CreateCertificate(&ctx, req, &resp);
      if (!s.ok()) return std::to_string(s.error_code()) + " " + s.error_message();
      return resp.cert_chain_size() >= 2 ? "" : "short chain";
    };
    call(0);  // handshake outside the measurement
    return call;
  });
}

int RunCfssl(const std::string& hostport, int n, double seconds, double rate) {
  const std::vector<std::string> csrs = Csrs(64);
  std::vector<std::string> bodies;
  for (const auto& c : csrs) bodies.push_back(nlohmann::json{{"certificate_request", c}}.dump());
  const std::string host = hostport.substr(0, hostport.rfind(':'));
  const int port = std::stoi(hostport.substr(hostport.rfind(':') + 1));
  return Drive(n, seconds, rate, [&](int i) {
    auto cli = std::make_shared<httplib::Client>(host, port);
    cli->set_keep_alive(true);
    cli->set_tcp_nodelay(true);  // else Nagle + delayed ACK add 40 ms to every call
    cli->set_read_timeout(10, 0);
    auto call = [cli, &bodies, i](int64_t k) -> std::string {
      auto res =
          cli->Post("/api/v1/cfssl/sign", bodies[(k + i) % bodies.size()], "application/json");
      if (!res) return "http error " + httplib::to_string(res.error());
      if (res->status != 200)
        return "status " + std::to_string(res->status) + " " + res->body.substr(0, 200);
      return res->body.find("\"success\":true") != std::string::npos ? ""
                                                                     : res->body.substr(0, 200);
    };
    call(0);
    return call;
  });
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 3 && a[0] == "serve") return Serve(a[1], std::stoi(a[2]));
  if ((a.size() == 5 || a.size() == 6) && a[0] == "grpc") {
    return RunGrpc(a[1], a[2], std::stoi(a[3]), std::stod(a[4]),
                   a.size() == 6 ? std::stod(a[5]) : 0);
  }
  if ((a.size() == 4 || a.size() == 5) && a[0] == "cfssl") {
    return RunCfssl(a[1], std::stoi(a[2]), std::stod(a[3]), a.size() == 5 ? std::stod(a[4]) : 0);
  }
  std::cerr << "usage: grpc_load serve DIR N | grpc ADDR DIR N SECONDS [RATE] | cfssl HOST:PORT N "
               "SECONDS [RATE]\n";
  return 2;
}
