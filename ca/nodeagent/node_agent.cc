#include "ca/nodeagent/node_agent.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/backoff.h"
#include "base/files.h"
#include "base/log.h"
#include "base/secret.h"
#include "istio/v1/auth/ca_service.grpc.pb.h"
#include "istio/v1/auth/certificate_service.grpc.pb.h"
#include "pki/csr.h"
#include "pki/verify.h"

namespace istioca::ca {

namespace pb = ::istio::v1::auth;

TimePoint RenewalTime(TimePoint not_before, TimePoint not_after, double jitter) {
  const auto lifetime = not_after - not_before;
  const double fraction = 0.5 - 0.05 * std::clamp(jitter, 0.0, 1.0);
  return not_before + std::chrono::duration_cast<TimePoint::duration>(lifetime * fraction);
}

Result<int32_t> LegacyTtlMinutes(Duration ttl) {
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(ttl);
  if (ttl < std::chrono::minutes(1) || minutes != ttl || minutes.count() > INT32_MAX) {
    return InvalidArgument("the legacy API requests whole minutes from 1m to " +
                           std::to_string(INT32_MAX) + "m; " + FormatDuration(ttl) +
                           " cannot be sent (use --api modern, or a whole number of minutes)");
  }
  return static_cast<int32_t>(minutes.count());
}

Duration RetryBackoff(int failures, Duration initial, Duration max, double jitter) {
  return std::chrono::duration_cast<Duration>(
      BackoffDelay(std::max(failures, 1), initial, max, /*jitter_fraction=*/0.2, jitter));
}

namespace {

// Key and chain (and the roots, when they share the directory) as one unit: PublishTogether's
// ..data swap. Files in different directories are each replaced atomically, key first; a reader
// may then briefly see the new key with the old chain.
Status WriteFiles(const NodeAgentOptions& o, const SecretString& key_pem,
                  const std::string& chain_pem, const std::string& roots_pem, bool roots_changed) {
  const std::filesystem::path key(o.key), chain(o.cert_chain), roots(o.root_cert);
  if (key.parent_path() == chain.parent_path() && key.filename() != chain.filename()) {
    std::vector<FileToPublish> files = {{key.filename(), key_pem.view(), 0600},
                                        {chain.filename(), chain_pem, 0644}};
    const bool roots_together = roots.parent_path() == key.parent_path() &&
                                roots.filename() != key.filename() &&
                                roots.filename() != chain.filename();
    if (roots_together) files.push_back({roots.filename(), roots_pem, 0644});
    const std::string dir = key.parent_path().empty() ? "." : key.parent_path().string();
    RETURN_IF_ERROR(PublishTogether(dir, files, /*durable=*/true));
    if (roots_together || !roots_changed) return OkStatus();
  } else {
    RETURN_IF_ERROR(WriteFileAtomic(o.key, key_pem.view(), 0600, /*durable=*/true));
    RETURN_IF_ERROR(WriteFileAtomic(o.cert_chain, chain_pem, 0644, /*durable=*/true));
    if (!roots_changed) return OkStatus();
  }
  return WriteFileAtomic(o.root_cert, roots_pem, 0644, /*durable=*/true);
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

struct CurrentFiles {
  std::vector<pki::Certificate> chain;
  SecretString key_pem;
  std::string chain_pem;
};

// The current certificate and key, if they are readable and belong together.
std::optional<CurrentFiles> ReadCurrent(const NodeAgentOptions& o) {
  auto chain_pem = ReadFileToString(o.cert_chain);
  if (!chain_pem.ok()) return std::nullopt;
  auto key_read = ReadFileToString(o.key);
  if (!key_read.ok()) return std::nullopt;
  SecretString key_pem(std::move(key_read).value());
  auto chain = pki::Certificate::ParsePemChain(*chain_pem);
  auto key = pki::PrivateKey::FromPem(key_pem.str());
  if (!chain.ok() || !key.ok() || !pki::SamePublicKey(chain->front().PublicKey(), key->get())) {
    return std::nullopt;
  }
  return CurrentFiles{std::move(chain).value(), std::move(key_pem), std::move(chain_pem).value()};
}

std::string HostOf(const std::string& address) {
  if (!address.empty() && address[0] == '[') return address.substr(1, address.find(']') - 1);
  return address.substr(0, address.rfind(':'));
}

Status GrpcError(const grpc::Status& s) {
  Code code = Code::kUnavailable;
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT: code = Code::kInvalidArgument; break;
    case grpc::StatusCode::PERMISSION_DENIED: code = Code::kPermissionDenied; break;
    case grpc::StatusCode::UNAUTHENTICATED: code = Code::kUnauthenticated; break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: code = Code::kResourceExhausted; break;
    case grpc::StatusCode::INTERNAL: code = Code::kInternal; break;
    default: break;
  }
  return Status(code, "CA refused or unreachable: " + s.error_message(),
                "grpc code " + std::to_string(static_cast<int>(s.error_code())));
}

}  // namespace

NodeAgent::NodeAgent(NodeAgentOptions options, const Clock& clock, std::function<double()> random)
    : options_(std::move(options)), clock_(clock), random_(std::move(random)) {}

TimePoint NodeAgent::Step() {
  const TimePoint now = clock_.Now();
  if (auto current = ReadCurrent(options_)) {
    const pki::Certificate& leaf = current->chain.front();
    // The jittered renewal time is decided once per certificate.
    if (renew_serial_ != leaf.SerialHex()) {
      renew_serial_ = leaf.SerialHex();
      renew_at_ = RenewalTime(leaf.NotBefore(), leaf.NotAfter(), random_());
    }
    if (now < renew_at_ && now >= leaf.NotBefore()) return renew_at_;
  }
  Status s = RenewNow();
  if (s.ok()) {
    auto current = ReadCurrent(options_);
    if (current) {
      const pki::Certificate& leaf = current->chain.front();
      renew_serial_ = leaf.SerialHex();
      renew_at_ = RenewalTime(leaf.NotBefore(), leaf.NotAfter(), random_());
      // A clock ahead of the CA's (or a TTL short next to the 2-minute backdating) puts the
      // renewal time in the past: wait half the remaining validity, between 1 s and 1 min,
      // rather than loop on the CA or sleep past expiry.
      if (renew_at_ <= now) {
        const Duration half_left = std::chrono::duration_cast<Duration>(leaf.NotAfter() - now) / 2;
        renew_at_ = now + std::chrono::duration_cast<TimePoint::duration>(std::clamp<Duration>(
                              half_left, std::chrono::seconds(1), std::chrono::minutes(1)));
      }
      return renew_at_;
    }
  }
  return now + RetryBackoff(failures_, options_.initial_backoff, options_.max_backoff, random_());
}

Status NodeAgent::RenewNow() {
  Status s = RenewImpl();
  auto log = Logger("node-agent");
  if (s.ok()) {
    failures_ = 0;
    last_error_ = OkStatus();
  } else {
    ++failures_;
    last_error_ = s;
    log->warn("certificate renewal failed attempt={} error={}; keeping the current files",
              failures_, s.ToString());
  }
  return s;
}

Status NodeAgent::RenewImpl() {
  const TimePoint now = clock_.Now();
  ASSIGN_OR_RETURN(std::string roots_pem, ReadFileToString(options_.root_cert));
  ASSIGN_OR_RETURN(std::vector<pki::Certificate> roots, pki::Certificate::ParsePemChain(roots_pem));

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = roots_pem;
  std::vector<std::string> identity;
  std::optional<CurrentFiles> current = ReadCurrent(options_);
  if (current) {
    identity = current->chain.front().UriSans();
    const pki::Certificate& leaf = current->chain.front();
    if (now >= leaf.NotBefore() && now < leaf.NotAfter()) {
      tls.pem_private_key = current->key_pem.str();
      tls.pem_cert_chain = current->chain_pem;
    }
  }
  std::string token;
  if (!options_.token_file.empty()) {
    ASSIGN_OR_RETURN(std::string t, ReadFileToString(options_.token_file));
    token = Trim(std::move(t));
  }
  if (tls.pem_cert_chain.empty() && token.empty()) {
    return FailedPrecondition("no valid certificate in " + options_.cert_chain +
                              " and no --token-file to authenticate with");
  }
  if (options_.legacy_api && identity.empty()) {
    return FailedPrecondition("the legacy API needs the identity of the current certificate in " +
                              options_.cert_chain);
  }

  ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::Generate(options_.key_type));
  ASSIGN_OR_RETURN(pki::Csr csr, pki::Csr::Build(key, {identity, {}, ""}));

  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(options_.ca_server_name.empty() ? HostOf(options_.ca_address)
                                                                : options_.ca_server_name);
  auto credentials = grpc::SslCredentials(tls);
  // The credentials hold their own copy of the key; ours is wiped now rather than when freed.
  Cleanse(tls.pem_private_key.data(), tls.pem_private_key.size());
  current.reset();
  auto channel = grpc::CreateCustomChannel(options_.ca_address, credentials, args);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);

  std::string chain_pem;
  std::string new_roots_pem;
  if (options_.legacy_api) {
    ASSIGN_OR_RETURN(const int32_t ttl_minutes, LegacyTtlMinutes(options_.workload_cert_ttl));
    pb::CsrRequest req;
    req.set_csr_pem(csr.ToPem());
    req.set_requested_ttl_minutes(ttl_minutes);
    req.set_credential_type(tls.pem_cert_chain.empty() ? "token" : "onprem");
    pb::CsrResponse resp;
    grpc::Status s = pb::IstioCAService::NewStub(channel)->HandleCSR(&ctx, req, &resp);
    if (!s.ok()) return GrpcError(s);
    if (!resp.is_approved()) return Unavailable("the CA did not approve the CSR");
    chain_pem = resp.signed_cert() + resp.cert_chain();
  } else {
    pb::IstioCertificateRequest req;
    req.set_csr(csr.ToPem());
    req.set_validity_duration(
        std::chrono::duration_cast<std::chrono::seconds>(options_.workload_cert_ttl).count());
    pb::IstioCertificateResponse resp;
    grpc::Status s =
        pb::IstioCertificateService::NewStub(channel)->CreateCertificate(&ctx, req, &resp);
    if (!s.ok()) return GrpcError(s);
    if (resp.cert_chain_size() < 2) return Unavailable("the CA returned an invalid empty chain");
    for (int i = 0; i + 1 < resp.cert_chain_size(); ++i) chain_pem += resp.cert_chain(i);
    new_roots_pem = resp.cert_chain(resp.cert_chain_size() - 1);
  }

  // Check before writing anything: our key, a chain to the roots, valid now.
  auto chain = pki::Certificate::ParsePemChain(chain_pem);
  if (!chain.ok())
    return Unavailable("the CA returned an unparsable chain", chain.status().ToString());
  std::vector<pki::Certificate> check_roots = roots;
  if (!new_roots_pem.empty()) {
    auto r = pki::Certificate::ParsePemChain(new_roots_pem);
    if (!r.ok()) return Unavailable("the CA returned unparsable roots", r.status().ToString());
    check_roots = std::move(r).value();
  }
  const pki::Certificate& leaf = chain->front();
  if (!pki::SamePublicKey(leaf.PublicKey(), key.get())) {
    return Unavailable("the CA returned a certificate for another key");
  }
  std::vector<pki::Certificate> intermediates(chain->begin() + 1, chain->end());
  auto verified = pki::VerifyChain(leaf, intermediates, check_roots, now);
  if (!verified.ok()) {
    return Unavailable("the CA returned a certificate that does not verify",
                       verified.status().ToString());
  }

  const std::string& roots_out = new_roots_pem.empty() ? roots_pem : new_roots_pem;
  ASSIGN_OR_RETURN(SecretString key_pem, key.ToPem());
  RETURN_IF_ERROR(WriteFiles(options_, key_pem, chain_pem, roots_out, roots_out != roots_pem));
  Logger("node-agent")
      ->info("certificate renewed serial={} not_after={} identity={}", leaf.SerialHex(),
             FormatRfc3339(leaf.NotAfter()), leaf.UriSans().empty() ? "-" : leaf.UriSans()[0]);
  return OkStatus();
}

}  // namespace istioca::ca
