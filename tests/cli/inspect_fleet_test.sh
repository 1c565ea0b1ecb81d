#!/usr/bin/env bash
# The fleet view end to end: the real istio-ca binary reads secrets from the fake Kubernetes
# API server (HTTPS, bearer token, kubeconfig) seeded with material made by the openssl CLI.
# Usage: inspect_fleet_test.sh PATH/TO/istio-ca PATH/TO/fake-apiserver
set -uo pipefail
BIN=$(realpath "${1:?usage: $0 istio-ca fake-apiserver}")
FAKE=$(realpath "${2:?usage: $0 istio-ca fake-apiserver}")
WORK=$(mktemp -d)
FAKE_PID=
cleanup() {
  [[ -n "$FAKE_PID" ]] && kill "$FAKE_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
pass=0
fail=0
check() {  # check NAME CONDITION-EXIT-STATUS MESSAGE
  if [[ $2 -eq 0 ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; echo "$3" | sed 's/^/    /' | head -20; fi
}
ossl() { openssl "$@" 2>/dev/null || { echo "openssl $* failed" >&2; exit 1; }; }

ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /O=cluster.local \
  -days 3650 -addext keyUsage=critical,keyCertSign,cRLSign
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout old.key -out old-root.pem -subj /O=old -days 3650
leaf() {  # leaf NS SA DAYS
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$2.key" -out "$2.csr" -subj /
  printf 'subjectAltName=critical,URI:spiffe://cluster.local/ns/%s/sa/%s\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:FALSE\n' "$1" "$2" >"$2.ext"
  ossl x509 -req -in "$2.csr" -CA ca.pem -CAkey ca.key -days "$3" -extfile "$2.ext" -out "$2.pem"
}
leaf default web 30
leaf ns1 soon 1
leaf ns2 stale 10

"$FAKE" --port 0 --kubeconfig-out kubeconfig >fake.out 2>&1 &
FAKE_PID=$!
for _ in $(seq 100); do grep -qs 'listening on' fake.out && break; sleep 0.05; done
URL=$(sed -n 's/.*listening on //p' fake.out)
[[ -n "$URL" ]] || { echo "fake-apiserver did not start"; cat fake.out; exit 1; }

post() {  # post NS JSON
  curl -sfk -o /dev/null -H "Authorization: Bearer fake-admin-token" -H 'Content-Type: application/json' \
    -X POST "$URL/api/v1/namespaces/$1/secrets" -d "$2" || { echo "seeding $1 failed"; exit 1; }
}
secret() {  # secret NS NAME TYPE key=file...
  local ns=$1 name=$2 type=$3 data="" k f
  shift 3
  for kv in "$@"; do
    k=${kv%%=*}; f=${kv#*=}
    data+="${data:+,}\"$k\":\"$(base64 -w0 <"$f")\""
  done
  post "$ns" "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"$name\"},\"type\":\"$type\",\"data\":{$data}}"
}
echo garbage >garbage.pem
secret default istio.web istio.io/key-and-cert cert-chain.pem=web.pem key.pem=web.key root-cert.pem=ca.pem
secret ns1 istio.soon istio.io/key-and-cert cert-chain.pem=soon.pem key.pem=soon.key root-cert.pem=ca.pem
secret ns2 istio.stale istio.io/key-and-cert cert-chain.pem=stale.pem key.pem=stale.key root-cert.pem=old-root.pem
secret ns3 istio.broken istio.io/key-and-cert cert-chain.pem=garbage.pem
secret ns3 not-istio istio.io/key-and-cert cert-chain.pem=garbage.pem
secret ns3 istio.opaque Opaque cert-chain.pem=garbage.pem
secret istio-system istio-ca-secret istio.io/ca-root ca-cert.pem=ca.pem ca-key.pem=ca.key root-cert.pem=ca.pem

out=$("$BIN" inspect --all-namespaces --kube-config kubeconfig 2>&1); rc=$?
check "fleet exits 1 when a secret is broken" $([[ $rc -eq 1 ]]; echo $?) "$out"
check "fleet lists the 4 istio.* secrets of type key-and-cert" $(grep -q '^4 secrets, 1 with problems' <<<"$out"; echo $?) "$out"
check "non-istio and non-key-and-cert secrets are not listed" $(! grep -qE 'not-istio|istio.opaque' <<<"$out"; echo $?) "$out"
order=$(sed -n '2,5p' <<<"$out" | awk '{print $1}' | tr '\n' ' ')
check "soonest expiry first, unreadable first of all" $([[ "$order" == "ns3/istio.broken ns1/istio.soon ns2/istio.stale default/istio.web " ]]; echo $?) "$order
$out"
check "the unreadable secret says why" $(grep -q 'ns3/istio.broken.*PROBLEM.*no PEM' <<<"$out"; echo $?) "$out"
check "a secret whose roots differ from the CA's is flagged" $(grep -qE '^ns2/istio.stale .*DIFFER' <<<"$out"; echo $?) "$out"
check "a current secret matches the CA's roots" $(grep -qE '^default/istio.web +spiffe://cluster.local/ns/default/sa/web .*match +ok' <<<"$out"; echo $?) "$out"

out=$("$BIN" inspect -A --kube-config kubeconfig --json 2>&1); rc=$?
check "fleet JSON" $(/usr/bin/python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
names = [s["source"] for s in d["sets"]]
assert names == ["secret ns3/istio.broken", "secret ns1/istio.soon", "secret ns2/istio.stale", "secret default/istio.web"], names
assert d["healthy"] is False
stale = d["sets"][2]
assert stale["chain"]["roots_match"] is False and stale["chain"]["verified"] is True, stale["chain"]
assert "istio-ca-secret" in d["sets"][3]["chain"]["roots_source"]
' <<<"$out" 2>&1; echo $?) "$out"

out=$("$BIN" inspect --secret default/istio.web --kube-config kubeconfig --brief 2>&1); rc=$?
check "--secret reads one secret, verified against the CA's roots" $([[ $rc -eq 0 ]] && grep -q "secret default/istio.web (secret)  HEALTHY" <<<"$out" && grep -q "verified against the CA's roots" <<<"$out"; echo $?) "$out"
out=$("$BIN" inspect --secret default/istio.web --kube-config kubeconfig --expiring-within 60d 2>&1); rc=$?
check "--secret with --expiring-within finds a problem" $([[ $rc -eq 1 ]]; echo $?) "$out"
out=$("$BIN" inspect --secret default/missing --kube-config kubeconfig 2>&1); rc=$?
check "--secret that does not exist: exit 2, one line" $([[ $rc -eq 2 && $(wc -l <<<"$out") -eq 1 ]] && grep -q 'not found' <<<"$out"; echo $?) "$out"
out=$("$BIN" inspect --secret nonsense --kube-config kubeconfig 2>&1); rc=$?
check "--secret without a namespace: exit 2" $([[ $rc -eq 2 ]] && grep -q 'NAMESPACE/NAME' <<<"$out"; echo $?) "$out"
sed 's/fake-admin-token/wrong-token/' kubeconfig >bad-kubeconfig
out=$("$BIN" inspect -A --kube-config bad-kubeconfig 2>&1); rc=$?
check "a rejected token: exit 2 with the API's reason, and no token in the message" $([[ $rc -eq 2 ]] && grep -qi 'unauthorized' <<<"$out" && ! grep -q 'wrong-token' <<<"$out"; echo $?) "$out"
kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null; FAKE_PID=
out=$("$BIN" inspect -A --kube-config kubeconfig 2>&1); rc=$?
check "an API server that is gone: exit 2, bounded" $([[ $rc -eq 2 ]]; echo $?) "$out"

echo "inspect_fleet_test: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
