#!/usr/bin/python3
"""Independent interop client for istio-ca's gRPC CSR APIs.

Uses only Debian's python3-grpcio, python3-protobuf and python3-cryptography. The messages are
declared here from Istio's field numbers (not generated from istio-ca's .proto files), so a
wrong field number on either side fails this test. CSRs are made with `cryptography`, not with
istio-ca's code.

  interop_client.py --server PATH_TO_grpc_test_server      # starts it, checks, stops it
  interop_client.py --address HOST:PORT --dir DIR [--token T]  # against a running daemon

DIR holds root-cert.pem, and for mTLS cert-chain.pem + key.pem of a workload identity.
"""
import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time

# A missing peer is a failure, never a skip: this test exists to run the independent client.
try:
    import grpc
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtensionOID
    from google.protobuf import any_pb2, descriptor_pb2, message_factory, struct_pb2  # noqa: F401
except ImportError as e:
    print("FAIL interop client: %s; install the Debian packages python3-grpcio, python3-protobuf "
          "and python3-cryptography (scripts/setup does)" % e, file=sys.stderr)
    sys.exit(1)

F = descriptor_pb2.FieldDescriptorProto


def _msg(fdp, name, fields):
    m = fdp.message_type.add(name=name)
    for number, fname, ftype, label, type_name in fields:
        f = m.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
        f.json_name = fname


OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
status_fdp = descriptor_pb2.FileDescriptorProto(
    name="interop/google_rpc_status.proto", package="google.rpc", syntax="proto3",
    dependency=["google/protobuf/any.proto"])
_msg(status_fdp, "Status", [(1, "code", F.TYPE_INT32, OPT, None),
                            (2, "message", F.TYPE_STRING, OPT, None),
                            (3, "details", F.TYPE_MESSAGE, REP, ".google.protobuf.Any")])
ca_fdp = descriptor_pb2.FileDescriptorProto(
    name="interop/istio_ca.proto", package="istio.v1.auth", syntax="proto3",
    dependency=["google/protobuf/struct.proto", "interop/google_rpc_status.proto"])
_msg(ca_fdp, "CsrRequest", [(1, "csr_pem", F.TYPE_BYTES, OPT, None),
                            (2, "node_agent_credential", F.TYPE_BYTES, OPT, None),
                            (3, "credential_type", F.TYPE_STRING, OPT, None),
                            (4, "requested_ttl_minutes", F.TYPE_INT32, OPT, None),
                            (5, "forCA", F.TYPE_BOOL, OPT, None)])
_msg(ca_fdp, "CsrResponse", [(1, "is_approved", F.TYPE_BOOL, OPT, None),
                             (2, "status", F.TYPE_MESSAGE, OPT, ".google.rpc.Status"),
                             (3, "signed_cert", F.TYPE_BYTES, OPT, None),
                             (4, "cert_chain", F.TYPE_BYTES, OPT, None)])
_msg(ca_fdp, "IstioCertificateRequest", [(1, "csr", F.TYPE_STRING, OPT, None),
                                         (3, "validity_duration", F.TYPE_INT64, OPT, None),
                                         (4, "metadata", F.TYPE_MESSAGE, OPT, ".google.protobuf.Struct")])
_msg(ca_fdp, "IstioCertificateResponse", [(1, "cert_chain", F.TYPE_STRING, REP, None)])
_deps = []
for _mod in (any_pb2, struct_pb2):
    _fdp = descriptor_pb2.FileDescriptorProto()
    _mod.DESCRIPTOR.CopyToProto(_fdp)
    _deps.append(_fdp)
M = message_factory.GetMessages(_deps + [status_fdp, ca_fdp])
CsrRequest, CsrResponse = M["istio.v1.auth.CsrRequest"], M["istio.v1.auth.CsrResponse"]
CertReq = M["istio.v1.auth.IstioCertificateRequest"]
CertResp = M["istio.v1.auth.IstioCertificateResponse"]

ALICE = "spiffe://cluster.local/ns/ns1/sa/alice"
BOB = "spiffe://cluster.local/ns/ns1/sa/bob"
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def make_csr(uris=(), dns=(), key=None, ca=False):
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    sans = [x509.UniformResourceIdentifier(u) for u in uris] + [x509.DNSName(d) for d in dns]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    csr = b.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def bad_signature_csr():
    pem, _ = make_csr([ALICE])
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x55
    b64 = base64.encodebytes(bytes(der)).decode()
    return "-----BEGIN CERTIFICATE REQUEST-----\n" + b64 + "-----END CERTIFICATE REQUEST-----\n"


class Client:
    def __init__(self, address, root_pem, key_pem=None, chain_pem=None, server_name="istio-ca"):
        creds = grpc.ssl_channel_credentials(root_pem, key_pem, chain_pem)
        self.channel = grpc.secure_channel(
            address, creds, options=[("grpc.ssl_target_name_override", server_name)])
        self.legacy = self.channel.unary_unary(
            "/istio.v1.auth.IstioCAService/HandleCSR",
            request_serializer=CsrRequest.SerializeToString,
            response_deserializer=CsrResponse.FromString)
        self.modern = self.channel.unary_unary(
            "/istio.v1.auth.IstioCertificateService/CreateCertificate",
            request_serializer=CertReq.SerializeToString,
            response_deserializer=CertResp.FromString)

    def create(self, csr, ttl=0, token=None, metadata=None):
        req = CertReq(csr=csr, validity_duration=ttl)
        if metadata:
            req.metadata.update(metadata)
        md = [("authorization", "Bearer " + token)] if token else None
        return self.modern(req, metadata=md, timeout=20)

    def handle(self, csr, ttl_minutes=0, token=None):
        csr_bytes = csr.encode() if isinstance(csr, str) else csr
        req = CsrRequest(csr_pem=csr_bytes, requested_ttl_minutes=ttl_minutes,
                         credential_type="onprem")
        md = [("authorization", "Bearer " + token)] if token else None
        return self.legacy(req, metadata=md, timeout=20)


def code_of(fn):
    """The call's status code, retrying ResourceExhausted (the per-identity rate limit of a
    daemon with default limits) with backoff, as Istio's clients do."""
    delay = 0.2
    for attempt in range(8):
        try:
            fn()
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or attempt == 7:
                return e.code(), e.details() or ""
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def load_certs(pem):
    """Every certificate of a PEM bundle (cryptography 38 has no load_pem_x509_certificates)."""
    if isinstance(pem, str):
        pem = pem.encode()
    end = b"-----END CERTIFICATE-----"
    return [x509.load_pem_x509_certificate(block + end)
            for block in pem.split(end) if b"-----BEGIN CERTIFICATE-----" in block]


def verify_leaf(leaf, issuer):
    pub = issuer.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
    else:
        pub.verify(leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(),
                   leaf.signature_hash_algorithm)


def uris_of(cert):
    san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def same_key(cert, key):
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def check_chain(what, pems, roots_pem, key, want_uri):
    certs = [x509.load_pem_x509_certificate(p.encode()) for p in pems[:-1]]
    roots = load_certs(pems[-1].encode())
    check(pems[-1].encode() == roots_pem.strip() + b"\n" or pems[-1].encode() == roots_pem,
          what + ": last element is the root bundle")
    check(uris_of(certs[0]) == [want_uri], what + ": SAN is " + want_uri)
    check(same_key(certs[0], key), what + ": leaf carries the CSR's public key")
    bc = certs[0].extensions.get_extension_for_class(x509.BasicConstraints).value
    check(not bc.ca, what + ": leaf is not a CA")
    chain = certs + [roots[0]]
    try:
        for child, parent in zip(chain, chain[1:]):
            verify_leaf(child, parent)
        check(True, what + ": chain verifies to the root")
    except Exception as e:  # noqa: BLE001
        check(False, what + ": chain verifies to the root (" + str(e) + ")")


def run(address, d, token, issued_count, token_identity=None):
    root = open(os.path.join(d, "root-cert.pem"), "rb").read()
    has_cert = os.path.exists(os.path.join(d, "key.pem"))
    ident = ALICE
    if has_cert:
        key_pem = open(os.path.join(d, "key.pem"), "rb").read()
        chain_pem = open(os.path.join(d, "cert-chain.pem"), "rb").read()
        ident = uris_of(x509.load_pem_x509_certificate(chain_pem))[0]
        mtls = Client(address, root, key_pem, chain_pem)
    anon = Client(address, root)
    S = grpc.StatusCode

    if has_cert:
        # Modern API, mTLS: the CSR asks for another identity; the caller's is issued.
        csr, key = make_csr([BOB])
        resp = mtls.create(csr, 3600, metadata={"ClusterID": "Kubernetes"})
        check(len(resp.cert_chain) >= 2, "modern/mTLS: chain has leaf and root")
        check_chain("modern/mTLS", list(resp.cert_chain), root, key, ident)
        # Legacy API, mTLS.
        csr, key = make_csr([ident])
        r = mtls.handle(csr, 60)
        check(r.is_approved, "legacy/mTLS: approved")
        leaf = x509.load_pem_x509_certificate(r.signed_cert)
        check(uris_of(leaf) == [ident] and same_key(leaf, key), "legacy/mTLS: leaf for the CSR's identity and key")
        extra = load_certs(r.cert_chain) if r.cert_chain else []
        rootc = load_certs(root)[0]
        try:
            for child, parent in zip([leaf] + extra, extra + [rootc]):
                verify_leaf(child, parent)
            check(True, "legacy/mTLS: leaf + cert_chain verify to the root")
        except Exception as e:  # noqa: BLE001
            check(False, "legacy/mTLS: verify (" + str(e) + ")")

    if token:
        ns, sa = token.split(":")[1:3] if token.startswith("token:") else ("", "")
        csr, key = make_csr()
        resp = anon.create(csr, 0, token=token)
        want = token_identity or ("spiffe://cluster.local/ns/%s/sa/%s" % (ns, sa) if ns else None)
        if want:
            check_chain("modern/bearer", list(resp.cert_chain), root, key, want)
            csr, key = make_csr([want])
            r = anon.handle(csr, 0, token=token)
            check(r.is_approved and uris_of(x509.load_pem_x509_certificate(r.signed_cert)) == [want],
                  "legacy/bearer: approved for the token's identity")
        else:
            check(len(resp.cert_chain) >= 2, "modern/bearer: issued")

    if not has_cert:
        return
    rsa1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    hostile = [
        ("garbage PEM", lambda: mtls.create("hello, not a CSR"), S.INVALID_ARGUMENT),
        ("garbage PEM (legacy)", lambda: mtls.handle(b"\x00\x01garbage"), S.INVALID_ARGUMENT),
        ("signature does not match key", lambda: mtls.create(bad_signature_csr()), S.INVALID_ARGUMENT),
        ("CSR asks CA:TRUE", lambda: mtls.create(make_csr([ident], ca=True)[0]), S.INVALID_ARGUMENT),
        ("another identity (legacy)", lambda: mtls.handle(make_csr([BOB])[0]), S.PERMISSION_DENIED),
        ("RSA-1024", lambda: mtls.create(make_csr([ident], key=rsa1024)[0]), S.INVALID_ARGUMENT),
        ("1 MiB CSR", lambda: mtls.create("A" * (1 << 20)), S.INVALID_ARGUMENT),
        ("TTL over max", lambda: mtls.create(make_csr([ident])[0], 2161 * 3600), S.INVALID_ARGUMENT),
        ("TTL over max (legacy)", lambda: mtls.handle(make_csr([ident])[0], 2161 * 60), S.INVALID_ARGUMENT),
        ("negative TTL", lambda: mtls.create(make_csr([ident])[0], -1), S.INVALID_ARGUMENT),
        ("legacy CSR without SAN", lambda: mtls.handle(make_csr()[0]), S.INVALID_ARGUMENT),
        ("no credentials", lambda: anon.create(make_csr([ident])[0]), S.UNAUTHENTICATED),
        ("no credentials (legacy)", lambda: anon.handle(make_csr([ident])[0]), S.UNAUTHENTICATED),
        ("forged bearer token", lambda: anon.create(make_csr()[0], token="forged"), S.UNAUTHENTICATED),
    ]
    before = issued_count()
    for name, fn, want in hostile:
        got, details = code_of(fn)
        check(got == want and "BEGIN" not in details,
              "hostile: %s -> %s (%s)" % (name, got.name, details[:80]))
        check(code_of(lambda: mtls.create(make_csr()[0]))[0] == S.OK, "hostile: %s: still serving" % name)
    after = issued_count()
    if before is not None:
        check(after - before == len(hostile), "hostile: nothing issued (only the %d liveness calls)" % len(hostile))


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_daemon(binary):
    """Local mode end to end: the daemon issues ns1/alice's secret, which then authenticates
    this client (mTLS) to the daemon's gRPC port."""
    import signal
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "local", "serviceaccounts", "ns1"))
        open(os.path.join(d, "local", "serviceaccounts", "ns1", "alice"), "w").close()
        # The daemon has no port-file for gRPC: take a free port (the race is only with other
        # processes binding an ephemeral port in the same instant).
        port = free_port()
        log = open(os.path.join(d, "daemon.log"), "w")
        p = subprocess.Popen([binary, "serve", "--local-dir", os.path.join(d, "local"),
                              "--grpc-port", str(port), "--monitoring-port", "0"],
                             stdout=log, stderr=subprocess.STDOUT)
        secret = os.path.join(d, "local", "secrets", "ns1", "istio.alice")
        try:
            # Waiting on another process's progress, bounded; not a timing assumption.
            for _ in range(200):
                if os.path.exists(os.path.join(secret, "key.pem")) or p.poll() is not None:
                    break
                time.sleep(0.1)
            check(os.path.exists(os.path.join(secret, "key.pem")), "daemon: issued ns1/alice's secret")
            run("127.0.0.1:%d" % port, secret, None, lambda: None)
            check(p.poll() is None, "daemon: still running after the hostile table")
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
        check(p.returncode == 0, "daemon: clean exit on SIGTERM")
        if FAILURES:
            print(open(os.path.join(d, "daemon.log")).read()[-3000:])


def kube_get(kubeconfig, path):
    """GET path from the API server of a kubeconfig written by fake-apiserver (TLS verified
    with its CA, bearer token); the JSON body, or None on 404."""
    import base64
    import json
    import re
    import ssl
    import urllib.error
    import urllib.request
    text = open(kubeconfig).read()
    server = re.search(r"server: (\S+)", text).group(1)
    ca = base64.b64decode(re.search(r"certificate-authority-data: (\S+)", text).group(1)).decode()
    token = re.search(r"token: (\S+)", text).group(1)
    ctx = ssl.create_default_context(cadata=ca)
    ctx.check_hostname = False  # the fake server's certificate is for 127.0.0.1 by IP
    req = urllib.request.Request(server + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def run_kube(binary, fakeapi):
    """Kubernetes mode end to end: the daemon against the fake API server. A service account's
    JWT (checked by TokenReview on the fake API server) gets certificates from both APIs; the
    secret the daemon wrote for that service account then authenticates mTLS and the hostile
    table."""
    import base64
    import secrets
    import signal
    with tempfile.TemporaryDirectory() as d:
        kubeconfig = os.path.join(d, "kubeconfig")
        jwt = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(24) + ".sig"
        fa = subprocess.Popen([fakeapi, "--kubeconfig-out", kubeconfig, "--namespaces", "1",
                               "--service-accounts-per-namespace", "1",
                               "--reviewable-token", jwt + "=ns-0/sa-0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = fa.stdout.readline()
        check("listening on" in line, "fake API server started (" + line.strip() + ")")
        port = free_port()
        log = open(os.path.join(d, "daemon.log"), "w")
        p = subprocess.Popen([binary, "serve", "--kube-config", kubeconfig, "--grpc-port", str(port),
                              "--monitoring-port", "0"], stdout=log, stderr=subprocess.STDOUT)
        try:
            secret = None
            # Waiting on other processes' progress, bounded; not a timing assumption.
            for _ in range(300):
                secret = kube_get(kubeconfig, "/api/v1/namespaces/ns-0/secrets/istio.sa-0")
                if secret or p.poll() is not None:
                    break
                time.sleep(0.1)
            check(secret is not None, "kube: the daemon wrote ns-0/istio.sa-0 to the API server")
            if secret:
                files = os.path.join(d, "secret")
                os.makedirs(files)
                for k in ("root-cert.pem", "cert-chain.pem", "key.pem"):
                    open(os.path.join(files, k), "wb").write(base64.b64decode(secret["data"][k]))
                for _ in range(300):  # the gRPC port opens once the CA is loaded
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                run("127.0.0.1:%d" % port, files, jwt, lambda: None,
                    token_identity="spiffe://cluster.local/ns/ns-0/sa/sa-0")
            check(p.poll() is None, "kube: daemon still running after the hostile table")
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
            fa.send_signal(signal.SIGTERM)
            fa.wait(timeout=30)
        check(p.returncode == 0, "kube: daemon clean exit on SIGTERM")
        if FAILURES:
            print(open(os.path.join(d, "daemon.log")).read()[-3000:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server")
    ap.add_argument("--address")
    ap.add_argument("--dir")
    ap.add_argument("--token")
    ap.add_argument("--daemon", help="istio-ca binary: run `serve --local-dir` and test it")
    ap.add_argument("--kube", help="istio-ca binary: run `serve --kube-config` against --fakeapi")
    ap.add_argument("--fakeapi", help="the fake-apiserver binary (with --kube)")
    a = ap.parse_args()
    if a.kube:
        run_kube(a.kube, a.fakeapi)
    elif a.daemon:
        run_daemon(a.daemon)
    elif a.server:
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.Popen([a.server, d], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            line = p.stdout.readline().strip()
            if not line.startswith("port="):
                print("server did not start: " + line)
                return 1

            def issued():
                p.stdin.write("metrics\n")
                p.stdin.flush()
                text = []
                for ln in p.stdout:
                    if ln.strip() == "END":
                        break
                    text.append(ln)
                for ln in text:
                    if ln.startswith("citadel_server_success_cert_issuance_count "):
                        return float(ln.split()[1])
                return 0.0

            try:
                run("127.0.0.1:" + line[5:], d, a.token or "token:ns2:web", issued)
            finally:
                p.stdin.close()
                p.wait(timeout=20)
            check(p.returncode == 0, "server exited cleanly")
    else:
        run(a.address, a.dir, a.token, lambda: None)
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
