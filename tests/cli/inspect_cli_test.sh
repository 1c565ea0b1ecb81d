#!/usr/bin/env bash
# End-to-end tests of `istio-ca inspect`: the real binary, material made by the openssl CLI (an
# independent implementation), real TLS servers (openssl s_server) on 127.0.0.1. Each case
# asserts the exit code and a line of the output. Usage: inspect_cli_test.sh PATH/TO/istio-ca
set -uo pipefail
BIN=$(realpath "${1:?usage: $0 path/to/istio-ca}")
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
pass=0
fail=0

# expect NAME WANT_RC WANT_TEXT -- command...   (stdout+stderr are matched with grep -F)
expect() {
  local name=$1 want_rc=$2 want_text=$3
  shift 4
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [[ $rc -eq $want_rc ]] && grep -qF -- "$want_text" <<<"$out"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $name: exit $rc (want $want_rc), output lacks '$want_text':"
    sed 's/^/    /' <<<"$out" | head -20
  fi
}

ossl() { openssl "$@" 2>/dev/null || { echo "openssl $* failed" >&2; exit 1; }; }

# --- material -------------------------------------------------------------------------------
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key -out root-cert.pem \
  -subj /O=cluster.local -days 3650 -addext keyUsage=critical,keyCertSign,cRLSign
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other-root.pem \
  -subj /O=other -days 3650
leaf() {  # leaf NAME SAN_EXT DAYS
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj /
  printf '%s\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n' "$2" >"$1.ext"
  ossl x509 -req -in "$1.csr" -CA root-cert.pem -CAkey root.key -days "$3" -extfile "$1.ext" -out "$1.pem"
}
leaf web 'subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/web' 1
leaf two 'subjectAltName=critical,URI:spiffe://cluster.local/ns/a/sa/b,URI:spiffe://cluster.local/ns/a/sa/c' 1
leaf bad 'subjectAltName=critical,URI:spiffe://Cluster.Local/ns/a/sa/b' 1
leaf api 'subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/api' 1
# A CA:TRUE certificate that carries a workload identity.
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout caid.key -out caid.csr -subj /
printf 'subjectAltName=critical,URI:spiffe://cluster.local/ns/x/sa/y\nkeyUsage=critical,digitalSignature,keyCertSign\nbasicConstraints=critical,CA:TRUE\n' >caid.ext
ossl x509 -req -in caid.csr -CA root-cert.pem -CAkey root.key -days 1 -extfile caid.ext -out caid.pem
# A root with RFC 5280's "no well-defined expiration" (NotAfter 99991231235959Z), and a
# workload under it: past 2262 a nanosecond count overflows.
mkdir forever && (
  cd forever && touch index.txt && echo 01 >serial &&
    printf '[ca]\ndefault_ca=d\n[d]\ndatabase=forever/index.txt\nnew_certs_dir=forever\nserial=forever/serial\npolicy=p\ndefault_md=sha256\nunique_subject=no\n[p]\norganizationName=supplied\n[x]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' >ca.cnf
) || exit 1
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout forever/root.key -out forever/root.csr -subj /O=forever
ossl ca -batch -config forever/ca.cnf -selfsign -keyfile forever/root.key -in forever/root.csr \
  -startdate 20260101000000Z -enddate 99991231235959Z -extensions x -notext -out forever-root.pem
ossl x509 -req -in web.csr -CA forever-root.pem -CAkey forever/root.key -days 1 -extfile web.ext -out forever-web.pem
mkdir certs && cp web.pem certs/cert-chain.pem && cp web.key certs/key.pem && cp root-cert.pem certs/root-cert.pem
mkdir mismatch && cp web.pem mismatch/cert-chain.pem && cp two.key mismatch/key.pem && cp root-cert.pem mismatch/
ossl x509 -in web.pem -outform der -out web.der
head -c 200 web.pem >truncated.pem
head -c $((10 * 1024 * 1024)) /dev/urandom >noise.bin
echo "this is not a certificate" >garbage.txt
/usr/bin/python3 - <<'PY'
import base64, json
b = lambda f: base64.b64encode(open(f, 'rb').read()).decode()
data = {'cert-chain.pem': b('certs/cert-chain.pem'), 'key.pem': b('certs/key.pem'), 'root-cert.pem': b('certs/root-cert.pem')}
secret = {'apiVersion': 'v1', 'kind': 'Secret', 'type': 'istio.io/key-and-cert',
          'metadata': {'name': 'istio.web', 'namespace': 'default',
                       'annotations': {'istio.io/service-account.name': 'web'}}, 'data': data}
json.dump(secret, open('secret.json', 'w'), indent=2)
with open('secret.yaml', 'w') as f:
    f.write('apiVersion: v1\nkind: Secret\ntype: istio.io/key-and-cert\nmetadata:\n  name: istio.web\n  namespace: default\ndata:\n')
    for k, v in data.items():
        f.write(f'  {k}: {v}\n')
PY

# --- healthy material ------------------------------------------------------------------------
expect "directory is healthy" 0 "SPIFFE ID   spiffe://cluster.local/ns/default/sa/web" -- "$BIN" inspect certs
expect "directory chain verified" 0 "verified against root-cert.pem" -- "$BIN" inspect certs
expect "key matches" 0 "Key         matches the certificate (EC P-256)" -- "$BIN" inspect certs
expect "files combine into one set" 0 "HEALTHY" -- "$BIN" inspect certs/cert-chain.pem certs/key.pem certs/root-cert.pem
expect "stdin PEM" 0 "spiffe://cluster.local/ns/default/sa/web" -- bash -c "'$BIN' inspect - <certs/cert-chain.pem"
expect "secret JSON on stdin" 0 "secret default/istio.web (secret)  HEALTHY" -- bash -c "'$BIN' inspect <secret.json"
expect "secret YAML on stdin" 0 "secret default/istio.web (secret)  HEALTHY" -- bash -c "'$BIN' inspect - <secret.yaml"
expect "--roots overrides" 0 "verified against --roots root-cert.pem" -- "$BIN" inspect web.pem --roots root-cert.pem
expect "no roots: not verified, still exit 0" 0 "not verified: no roots" -- "$BIN" inspect web.pem
expect "--at inside validity" 0 "HEALTHY" -- "$BIN" inspect certs --at +20h
expect "a root that never expires is read right" 0 "to 9999-12-31T23:59:59Z" -- "$BIN" inspect forever-root.pem
expect "a root that never expires is healthy" 0 "HEALTHY" -- "$BIN" inspect forever-root.pem
expect "a leaf under a never-expiring root verifies" 0 "verified against --roots forever-root.pem" -- "$BIN" inspect forever-web.pem --roots forever-root.pem
expect "--json is JSON" 0 '"schema": "istio-ca.inspect/v1"' -- "$BIN" inspect certs --json
expect "--json parses and says healthy" 0 "ok" -- bash -c "'$BIN' inspect certs --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"healthy\"] and d[\"sets\"][0][\"spiffe_id\"]==\"spiffe://cluster.local/ns/default/sa/web\"; print(\"ok\")'"
expect "no colour when not a TTY" 0 "HEALTHY" -- bash -c "'$BIN' inspect certs | grep -v \$'\\x1b' | grep -c . >/dev/null && '$BIN' inspect certs"

expect "each certificate file is its own set" 0 "web.pem (file)  HEALTHY" -- "$BIN" inspect --roots root-cert.pem web.pem api.pem
expect "each certificate file is its own set (2)" 0 "api.pem (file)  HEALTHY" -- "$BIN" inspect --roots root-cert.pem web.pem api.pem
expect "two workloads are not one chain" 0 "no signing-certificate findings" -- bash -c "'$BIN' inspect --roots root-cert.pem web.pem api.pem | grep -q 'signing certificate' || echo 'no signing-certificate findings'"
expect "a key file joins the certificate it matches" 0 "web.pem + web.key (file)  HEALTHY" -- "$BIN" inspect --roots root-cert.pem api.pem web.pem web.key

# --- findings: exit 1 ------------------------------------------------------------------------
expect "the exit status is the worst of the sets" 1 "web.pem (file)  HEALTHY" -- "$BIN" inspect --roots root-cert.pem web.pem two.pem
expect "a workload identity on a CA violates X509-SVID" 1 "must not be a CA" -- "$BIN" inspect caid.pem --roots root-cert.pem
expect "a signing certificate's SPIFFE ID has no path" 1 "SPIFFE ID must not have a path" -- "$BIN" inspect caid.pem --roots root-cert.pem
expect "expired at a later time" 1 "expired at" -- "$BIN" inspect certs --at +2d
expect "not yet valid at an earlier time" 1 "is not valid until" -- "$BIN" inspect certs --at 2020-01-01T00:00:00Z
expect "expiring within" 1 "expires within 2d" -- "$BIN" inspect certs --expiring-within 48h
expect "foreign root" 1 "chain does not verify against --roots other-root.pem" -- "$BIN" inspect certs --roots other-root.pem
expect "foreign root is flagged as differing" 1 "root-cert.pem differs from --roots other-root.pem" -- "$BIN" inspect certs --roots other-root.pem
expect "key mismatch" 1 "DOES NOT MATCH" -- "$BIN" inspect mismatch
expect "two SPIFFE IDs violate X509-SVID" 1 "exactly one URI SAN" -- "$BIN" inspect two.pem --roots root-cert.pem
expect "invalid SPIFFE ID" 1 "not a valid SPIFFE ID" -- "$BIN" inspect bad.pem --roots root-cert.pem
expect "--json reports the problem" 1 '"healthy": false' -- "$BIN" inspect mismatch --json

# --- unusable input: exit 2, one line ---------------------------------------------------------
expect "garbage" 2 "no PEM certificate or Kubernetes Secret found" -- "$BIN" inspect garbage.txt
expect "truncated PEM" 2 "has no END line (truncated?)" -- "$BIN" inspect truncated.pem
expect "DER where PEM is expected" 2 "looks like DER, not PEM" -- "$BIN" inspect web.der
expect "CSR where a certificate is expected" 2 "certificate signing request" -- "$BIN" inspect web.csr
expect "a key alone" 2 "only a private key" -- "$BIN" inspect web.key
expect "10 MB of noise" 2 "larger than 4 MiB" -- "$BIN" inspect noise.bin
expect "10 MB of noise on stdin" 2 "standard input: larger than 4 MiB" -- bash -c "'$BIN' inspect - <noise.bin"
expect "empty stdin" 2 "standard input is empty" -- bash -c "'$BIN' inspect - </dev/null"
expect "missing file" 2 "no such file or directory" -- "$BIN" inspect does-not-exist.pem
mkdir empty-dir
expect "directory without certs" 2 "no cert-chain.pem" -- "$BIN" inspect empty-dir
expect "unreadable roots" 2 "--roots" -- "$BIN" inspect certs --roots garbage.txt
expect "bad --at" 2 "--at: invalid time" -- "$BIN" inspect certs --at tomorrow
expect "bad --expiring-within" 2 "--expiring-within: invalid duration" -- "$BIN" inspect certs --expiring-within 3x
expect "unknown flag" 2 "--frobnicate" -- "$BIN" inspect certs --frobnicate
expect "unreachable --connect" 2 "cannot connect to 127.0.0.1:1" -- "$BIN" inspect --connect 127.0.0.1:1 --timeout 2s
expect "malformed --connect" 2 "invalid" -- "$BIN" inspect --connect nohostport
# A server that accepts TCP but never speaks TLS: bounded by --timeout, never a hang.
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
conns = []
end = time.time() + 30
while time.time() < end:
    c, _ = s.accept(); conns.append(c)
' >silent.port &
PIDS+=($!)
for _ in $(seq 100); do [[ -s silent.port ]] && break; sleep 0.05; done
start=$(date +%s)
expect "silent server times out" 2 "TLS handshake with 127.0.0.1:$(cat silent.port) failed" -- \
  "$BIN" inspect --connect "127.0.0.1:$(cat silent.port)" --timeout 1s
[[ $(($(date +%s) - start)) -le 5 ]] || { fail=$((fail + 1)); echo "FAIL: --timeout 1s took more than 5 s"; }

# --- live TLS endpoints -----------------------------------------------------------------------
serve() {  # serve OUTFILE openssl-s_server-args...: starts s_server on a free port, prints the port
  local out=$1
  shift
  openssl s_server -accept 127.0.0.1:0 -www -naccept 1 "$@" >"$out" 2>&1 </dev/null &
  PIDS+=($!)
  for _ in $(seq 100); do grep -qs '^ACCEPT' "$out" && break; sleep 0.05; done
  sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$out"
}
port=$(serve s1.out -cert web.pem -key web.key -cert_chain root-cert.pem)
expect "--connect TLS 1.3" 0 "127.0.0.1:$port (connect)  HEALTHY" -- "$BIN" inspect --connect "127.0.0.1:$port" --roots root-cert.pem
port=$(serve s2.out -cert web.pem -key web.key -tls1_2 -Verify 1)
expect "--connect to a server requiring client certs still shows its chain" 0 "may require a client certificate" -- \
  "$BIN" inspect --connect "127.0.0.1:$port" --roots root-cert.pem
port=$(serve s3.out -cert web.pem -key web.key)
expect "--connect with the wrong roots" 1 "chain does not verify" -- "$BIN" inspect --connect "127.0.0.1:$port" --roots other-root.pem

echo "inspect_cli_test: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
