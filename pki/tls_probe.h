// pki/tls_probe.h — fetch the certificate chain a TLS server presents.
//
// The handshake does not verify the peer (the caller verifies with VerifyChain at the time it
// chooses) and is bounded by `timeout` for connect, handshake and each read.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "pki/cert.h"

namespace istioca::pki {

struct PeerChain {
  std::vector<Certificate> certs;  // as sent: leaf first
  std::string protocol;            // "TLSv1.3"
  std::string cipher;
  std::vector<std::string> notes;  // e.g. the server asked for a client certificate
};

// `address` is HOST:PORT or [V6]:PORT. `servername` sets SNI (defaults to the host unless it is
// an IP literal). Unavailable for network failures, InvalidArgument for a malformed address.
Result<PeerChain> FetchPeerChain(const std::string& address, const std::string& servername,
                                 Duration timeout);

}  // namespace istioca::pki
