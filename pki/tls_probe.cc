#include "pki/tls_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace istioca::pki {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status SplitAddress(const std::string& address, std::string* host, std::string* port) {
  if (!address.empty() && address[0] == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return InvalidArgument("invalid address \"" + address + "\" (use HOST:PORT or [IPv6]:PORT)");
    }
    *host = address.substr(1, close - 1);
    *port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return InvalidArgument("invalid address \"" + address + "\" (use HOST:PORT)");
    }
    *host = address.substr(0, colon);
    *port = address.substr(colon + 1);
  }
  if (port->empty() || port->find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port->substr(0, 6)) == 0 || std::stoul(port->substr(0, 6)) > 65535) {
    return InvalidArgument("invalid port in \"" + address + "\"");
  }
  return OkStatus();
}

Result<int> ConnectWithTimeout(const std::string& host, const std::string& port, int timeout_ms) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int gai = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) return Unavailable("cannot resolve " + host + ": " + gai_strerror(gai));
  std::string last_error = "no addresses";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const int ready = poll(&p, 1, timeout_ms);
      if (ready == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        rc = -1;
        if (ready == 0) errno = ETIMEDOUT;
      }
    }
    if (rc == 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      freeaddrinfo(res);
      return fd;
    }
    last_error = std::strerror(errno == 0 ? ETIMEDOUT : errno);
    close(fd);
  }
  freeaddrinfo(res);
  return Unavailable("cannot connect to " + host + ":" + port + ": " + last_error);
}

}  // namespace

Result<PeerChain> FetchPeerChain(const std::string& address, const std::string& servername,
                                 Duration timeout) {
  std::string host, port;
  RETURN_IF_ERROR(SplitAddress(address, &host, &port));
  const int timeout_ms =
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
  ASSIGN_OR_RETURN(int raw_fd, ConnectWithTimeout(host, port, timeout_ms));
  Fd fd(raw_fd);
  UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) return OsslError(Code::kInternal, "creating TLS context failed");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  UniquePtr<SSL> ssl(SSL_new(ctx.get()));
  if (ssl == nullptr || SSL_set_fd(ssl.get(), fd.get()) != 1) {
    return OsslError(Code::kInternal, "creating TLS connection failed");
  }
  in6_addr addr6;
  in_addr addr4;
  std::string sni = servername;
  if (sni.empty() && inet_pton(AF_INET, host.c_str(), &addr4) != 1 &&
      inet_pton(AF_INET6, host.c_str(), &addr6) != 1) {
    sni = host;
  }
  if (!sni.empty() && SSL_set_tlsext_host_name(ssl.get(), sni.c_str()) != 1) {
    return OsslError(Code::kInvalidArgument, "unusable TLS server name \"" + sni + "\"");
  }
  PeerChain out;
  if (SSL_connect(ssl.get()) != 1) {
    // A server that requires a client certificate (TLS 1.2) aborts after sending its own chain;
    // that chain is still what we came for.
    if (SSL_get_peer_cert_chain(ssl.get()) == nullptr) {
      return OsslError(Code::kUnavailable, "TLS handshake with " + address + " failed");
    }
    ClearOsslErrors();
    out.notes.push_back(
        "the handshake did not complete (the server may require a client certificate)");
  }
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get());
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* c = sk_X509_value(chain, i);
    if (c == nullptr || X509_up_ref(c) != 1) {
      return OsslError(Code::kInternal, "reading the peer's chain failed");
    }
    ASSIGN_OR_RETURN(Certificate cert, Certificate::Adopt(UniquePtr<X509>(c)));
    out.certs.push_back(std::move(cert));
  }
  out.protocol = SSL_get_version(ssl.get());
  out.cipher = SSL_get_cipher_name(ssl.get());
  SSL_shutdown(ssl.get());
  ClearOsslErrors();
  if (out.certs.empty()) return Unavailable(address + " presented no certificate");
  return out;
}

}  // namespace istioca::pki
