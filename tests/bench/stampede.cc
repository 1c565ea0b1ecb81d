// stampede: a pod-start stampede against the CSR service (scripts/bench-stampede). Every caller
// (one line of TOKENS_FILE: its bearer token as the first field) sends CreateCertificate at
// the same instant, with `authorization: Bearer <token>` and a CSR, over a few TLS channels
// (no client certificate), and on failure retries with istio-agent's backoff: exponential with
// jitter from 100 ms (100, 200, 400, 800, 1600 ms, each ±10%; pkg/security/retry.go). Istio's
// agent gives up after 5 retries and the SDS request is repeated later; here a caller keeps
// retrying at the last interval until it holds a certificate or --max-seconds pass, and the
// callers that needed more than 5 retries are counted.
//
//   stampede ADDR ROOT_PEM TOKENS_FILE [--channels N (4)] [--max-seconds S (60)]
//            [--call-timeout S (10)] [--seed N]
//
// Output (key=value): callers, certified, all_certified_s (time until every caller held a
// certificate), p50_s / p99_s / max_s of the callers' time to certificate, attempts, failures,
// over_5_retries, client_cpu_s; then one "failure count=… code=… message=…" line per distinct
// cause (code and message as the callers saw them, digits folded to #).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/files.h"
#include "istio/v1/auth/certificate_service.grpc.pb.h"
#include "pki/csr.h"
#include "pki/key.h"

using namespace istioca;
using Steady = std::chrono::steady_clock;
namespace pb = ::istio::v1::auth;

namespace {

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "stampede: " << what << "\n";
  std::exit(1);
}

template <class T>
T OrDie(Result<T> r) {
  if (!r.ok()) Die(r.status().ToString());
  return std::move(r).value();
}

// The project's file reader (base/files.h); a tool that cannot read its input stops.
std::string Slurp(const std::string& path) { return OrDie(ReadFileToString(path)); }

const char* CodeName(grpc::StatusCode c) {
  static const char* names[] = {"OK",
                                "CANCELLED",
                                "UNKNOWN",
                                "INVALID_ARGUMENT",
                                "DEADLINE_EXCEEDED",
                                "NOT_FOUND",
                                "ALREADY_EXISTS",
                                "PERMISSION_DENIED",
                                "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION",
                                "ABORTED",
                                "OUT_OF_RANGE",
                                "UNIMPLEMENTED",
                                "INTERNAL",
                                "UNAVAILABLE",
                                "DATA_LOSS",
                                "UNAUTHENTICATED"};
  const int i = static_cast<int>(c);
  return i >= 0 && i <= 16 ? names[i] : "?";
}

// The message with digits folded, so per-caller numbers do not split one cause into many.
std::string Fold(const std::string& m) {
  std::string out;
  for (char ch : m.substr(0, 160)) {
    if (ch >= '0' && ch <= '9') {
      if (out.empty() || out.back() != '#') out += '#';
    } else {
      out += ch == '\n' ? ' ' : ch;
    }
  }
  return out;
}

double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

struct Caller {
  std::string authorization;
  int attempts = 0;
  double certified_s = -1;
  std::unique_ptr<grpc::ClientContext> ctx;
  pb::IstioCertificateResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::IstioCertificateResponse>> reader;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() < 3) {
    std::cerr << "usage: stampede ADDR ROOT_PEM TOKENS_FILE [--channels N] [--max-seconds S] "
                 "[--call-timeout S] [--seed N]\n";
    return 2;
  }
  int channels = 4;
  double max_seconds = 60, call_timeout = 10;
  uint64_t seed = 1;
  for (size_t i = 3; i + 1 < a.size(); i += 2) {
    if (a[i] == "--channels")
      channels = std::stoi(a[i + 1]);
    else if (a[i] == "--max-seconds")
      max_seconds = std::stod(a[i + 1]);
    else if (a[i] == "--call-timeout")
      call_timeout = std::stod(a[i + 1]);
    else if (a[i] == "--seed")
      seed = std::stoull(a[i + 1]);
    else
      Die("unknown option " + a[i]);
  }

  std::vector<Caller> callers;
  {
    std::ifstream in(a[2]);
    if (!in) Die("cannot read " + a[2]);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string token;
      if (fields >> token && token[0] != '#') {
        callers.emplace_back();
        callers.back().authorization = "Bearer " + token;
      }
    }
  }
  if (callers.empty()) Die("no tokens in " + a[2]);

  std::vector<pb::IstioCertificateRequest> requests;
  for (int i = 0; i < 64; ++i) {
    pki::PrivateKey key = OrDie(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
    pki::CsrOptions o;
    o.organization = "stampede";
    requests.emplace_back();
    requests.back().set_csr(OrDie(pki::Csr::Build(key, o)).ToPem());
  }

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = Slurp(a[1]);
  std::vector<std::unique_ptr<pb::IstioCertificateService::Stub>> stubs;
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("istio-ca");
    args.SetInt("stampede.channel", i);
    auto channel = grpc::CreateCustomChannel(a[0], grpc::SslCredentials(tls), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
      Die("channel " + std::to_string(i) + " did not connect to " + a[0]);
    stubs.push_back(pb::IstioCertificateService::NewStub(channel));
  }

  grpc::CompletionQueue cq;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> jitter(-0.1, 0.1);
  using Timer = std::pair<Steady::time_point, size_t>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;
  std::map<std::pair<std::string, std::string>, int64_t> failures;
  int64_t attempts = 0, failed = 0;
  size_t certified = 0, in_flight = 0;

  const double cpu0 = CpuSeconds();
  const auto start = Steady::now();
  const auto give_up = start + std::chrono::duration_cast<Steady::duration>(
                                   std::chrono::duration<double>(max_seconds));
  auto start_call = [&](size_t i) {
    Caller& c = callers[i];
    c.ctx = std::make_unique<grpc::ClientContext>();
    c.ctx->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::duration<double>(call_timeout)));
    c.ctx->AddMetadata("authorization", c.authorization);
    c.response.Clear();
    c.reader = stubs[i % stubs.size()]->PrepareAsyncCreateCertificate(
        c.ctx.get(), requests[i % requests.size()], &cq);
    c.reader->StartCall();
    c.reader->Finish(&c.response, &c.status, reinterpret_cast<void*>(i));
    ++c.attempts;
    ++attempts;
    ++in_flight;
  };
  for (size_t i = 0; i < callers.size(); ++i) start_call(i);

  while (certified < callers.size()) {
    const auto now = Steady::now();
    while (!timers.empty() && timers.top().first <= now) {
      const size_t i = timers.top().second;
      timers.pop();
      if (now < give_up) start_call(i);
    }
    if (in_flight == 0 && (timers.empty() || now >= give_up)) break;
    auto deadline = timers.empty() ? give_up + std::chrono::seconds(1) : timers.top().first;
    if (in_flight > 0) deadline = std::max(deadline, now);  // drain even past give_up
    void* tag = nullptr;
    bool ok = false;
    const auto wall = std::chrono::system_clock::now() + (deadline - Steady::now());
    const auto got = cq.AsyncNext(&tag, &ok, wall);
    if (got != grpc::CompletionQueue::GOT_EVENT) {
      if (Steady::now() > give_up + std::chrono::seconds(static_cast<int>(call_timeout) + 5)) break;
      continue;
    }
    const size_t i = reinterpret_cast<size_t>(tag);
    Caller& c = callers[i];
    --in_flight;
    c.reader.reset();
    if (ok && c.status.ok() && c.response.cert_chain_size() > 0) {
      c.certified_s = std::chrono::duration<double>(Steady::now() - start).count();
      ++certified;
      continue;
    }
    ++failed;
    const std::string code = ok ? CodeName(c.status.error_code()) : "CQ_FAILED";
    const std::string msg = ok && !c.status.ok() ? Fold(c.status.error_message()) : "empty chain";
    if (failures[{code, msg}]++ == 0) {
      std::cerr << "stampede: first " << code << ": " << c.status.error_message() << "\n";
    }
    // istio-agent: 100 ms x 2^(retry-1), ±10 %; past its 5 retries, the last interval again.
    const int retry = std::min(c.attempts, 5);
    const double wait_s = 0.1 * std::pow(2.0, retry - 1) * (1 + jitter(rng));
    timers.push({Steady::now() + std::chrono::duration_cast<Steady::duration>(
                                     std::chrono::duration<double>(wait_s)),
                 i});
  }
  const double cpu = CpuSeconds() - cpu0;

  std::vector<double> times;
  int64_t over5 = 0;
  for (const Caller& c : callers) {
    if (c.certified_s >= 0) times.push_back(c.certified_s);
    if (c.attempts > 6) ++over5;
  }
  std::sort(times.begin(), times.end());
  auto pct = [&](double p) {
    return times.empty() ? 0.0
                         : times[std::min(times.size() - 1, static_cast<size_t>(p * times.size()))];
  };
  std::printf(
      "callers=%zu certified=%zu all_certified_s=%s p50_s=%.3f p99_s=%.3f max_s=%.3f "
      "attempts=%lld failures=%lld over_5_retries=%lld client_cpu_s=%.2f\n",
      callers.size(), certified,
      certified == callers.size() ? std::to_string(times.back()).c_str() : "never", pct(0.50),
      pct(0.99), times.empty() ? 0.0 : times.back(), static_cast<long long>(attempts),
      static_cast<long long>(failed), static_cast<long long>(over5), cpu);
  for (const auto& [cause, n] : failures) {
    std::printf("failure count=%lld code=%s message=%s\n", static_cast<long long>(n),
                cause.first.c_str(), cause.second.c_str());
  }
  std::fflush(stdout);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  return 0;
}
