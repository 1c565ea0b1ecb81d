#!/usr/bin/env bash
# interop_test.sh MODE MATERIAL_DIR [GO_WORK_DIR]
#
# Verifies what interop_issue wrote with a tool that shares no code with istio-ca:
#   openssl  `openssl verify` (with and without the intermediate), negative cases, and the
#            extensions DESIGN.md "Certificates" requires, as `openssl x509 -ext` prints them
#   go       tests/interop/goverify (crypto/x509, Istio's own verifier), offline
#   gnutls   `certtool --verify` of the chain against the root, and of a wrong root
# A missing tool is a failure (exit 1), not a skip: ctest does not count a skip as a failure,
# so a CI image without a peer would pass without checking. scripts/setup installs all three.
set -euo pipefail

mode=${1:?mode}
material=${2:?material dir}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
types=(ec-p256 ec-p384 rsa-2048)
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "FAIL: interop $mode: '$1' is not installed, so nothing was checked (scripts/setup installs it)"
  exit 1
}

# expect_contains LABEL TEXT NEEDLE...
expect_contains() {
  local label=$1 text=$2; shift 2
  local needle
  for needle in "$@"; do
    grep -qF -- "$needle" <<<"$text" || fail "$label: output lacks '$needle'"$'\n'"$text"
  done
}

check_openssl() {
  need openssl
  local t d out
  for t in "${types[@]}"; do
    d=$material/$t
    openssl verify -CAfile "$d/root.pem" -untrusted "$d/intermediate.pem" "$d/leaf.pem" >/dev/null ||
      fail "$t: openssl verify of leaf via intermediate"
    openssl verify -CAfile "$d/root.pem" "$d/leaf-direct.pem" >/dev/null || fail "$t: openssl verify of leaf issued by root"
    for purpose in sslserver sslclient; do
      openssl verify -purpose $purpose -CAfile "$d/root.pem" -untrusted "$d/intermediate.pem" "$d/leaf.pem" >/dev/null ||
        fail "$t: openssl verify -purpose $purpose"
    done
    if openssl verify -CAfile "$d/other-root.pem" -untrusted "$d/intermediate.pem" "$d/leaf.pem" >/dev/null 2>&1; then
      fail "$t: leaf verified against an unrelated root"
    fi
    if openssl verify -CAfile "$d/root.pem" "$d/leaf.pem" >/dev/null 2>&1; then
      fail "$t: leaf verified without its intermediate"
    fi
    # Past the leaf's NotAfter (issued_at + ttl + 1h) the chain must not verify.
    local late=$(( $(cat "$d/issued_at") + $(cat "$d/ttl_seconds") + 3600 ))
    if openssl verify -attime "$late" -CAfile "$d/root.pem" -untrusted "$d/intermediate.pem" "$d/leaf.pem" >/dev/null 2>&1; then
      fail "$t: leaf verified after its NotAfter"
    fi

    local spiffe dns
    spiffe=$(cat "$d/spiffe_id"); dns=$(cat "$d/dns_name")
    for leaf in leaf leaf-direct; do
      out=$(openssl x509 -in "$d/$leaf.pem" -noout \
        -ext subjectAltName,keyUsage,extendedKeyUsage,basicConstraints,subjectKeyIdentifier,authorityKeyIdentifier 2>&1)
      expect_contains "$t/$leaf extensions" "$out" \
        "X509v3 Subject Alternative Name: critical" "URI:$spiffe" "DNS:$dns" \
        "X509v3 Key Usage: critical" "Digital Signature, Key Encipherment" \
        "X509v3 Extended Key Usage:" "TLS Web Server Authentication, TLS Web Client Authentication" \
        "X509v3 Basic Constraints: critical" "CA:FALSE" \
        "X509v3 Subject Key Identifier:" "X509v3 Authority Key Identifier:"
      grep -q "Certificate Sign" <<<"$out" && fail "$t/$leaf: leaf has keyCertSign"
      out=$(openssl x509 -in "$d/$leaf.pem" -noout -subject -serial)
      grep -qx 'subject=' <<<"$out" || fail "$t/$leaf: subject is not empty: $out"
      local serial=${out##*serial=}
      (( ${#serial} <= 32 && ${#serial} >= 16 )) || fail "$t/$leaf: serial $serial is not a 64..128-bit number"
    done
    out=$(openssl x509 -in "$d/root.pem" -noout -subject -ext keyUsage,basicConstraints,subjectKeyIdentifier 2>&1)
    expect_contains "$t/root" "$out" "subject=O = cluster.local" "X509v3 Key Usage: critical" \
      "Certificate Sign, CRL Sign" "X509v3 Basic Constraints: critical" "CA:TRUE" "X509v3 Subject Key Identifier:"
    # The key file is PKCS#8 and matches the leaf.
    head -1 "$d/key.pem" | grep -qx -- "-----BEGIN PRIVATE KEY-----" || fail "$t: key.pem is not PKCS#8"
    [[ $(openssl pkey -in "$d/key.pem" -pubout) == $(openssl x509 -in "$d/leaf.pem" -noout -pubkey) ]] ||
      fail "$t: key.pem does not match leaf.pem"
    [[ $(stat -c %a "$d/key.pem") == 600 ]] || fail "$t: key.pem mode is $(stat -c %a "$d/key.pem"), want 600"
    echo "openssl $t: checked"
  done
}

check_go() {
  need go
  local work=${3:-$material/go}
  mkdir -p "$work/cache" "$work/path"
  # Offline and module-free: the verifier uses the standard library only.
  export GOCACHE=$work/cache GOPATH=$work/path GO111MODULE=off GOPROXY=off GOFLAGS=
  go build -o "$work/goverify" "$here/goverify/main.go" || { fail "go build of goverify"; return; }
  local t
  for t in "${types[@]}"; do
    "$work/goverify" "$material/$t" || fail "$t: goverify"
  done
}

check_gnutls() {
  need certtool
  local t d out
  for t in "${types[@]}"; do
    d=$material/$t
    out=$(certtool --verify --load-ca-certificate "$d/root.pem" --infile "$d/chain.pem" 2>&1) ||
      fail "$t: certtool --verify of chain.pem: $out"
    expect_contains "$t certtool chain" "$out" "Chain verification output: Verified."
    out=$(certtool --verify --load-ca-certificate "$d/root.pem" --infile "$d/leaf-direct.pem" 2>&1) ||
      fail "$t: certtool --verify of leaf-direct.pem: $out"
    expect_contains "$t certtool direct" "$out" "Chain verification output: Verified."
    if out=$(certtool --verify --load-ca-certificate "$d/other-root.pem" --infile "$d/chain.pem" 2>&1); then
      fail "$t: certtool verified the chain against an unrelated root"
    fi
    grep -q "Not verified" <<<"$out" || fail "$t: certtool with a wrong root did not say 'Not verified': $out"
    echo "gnutls $t: checked"
  done
}

case $mode in
  openssl) check_openssl ;;
  go) check_go "$@" ;;
  gnutls) check_gnutls ;;
  *) echo "interop_test.sh: unknown mode $mode" >&2; exit 2 ;;
esac

if [[ $failures -gt 0 ]]; then
  echo "interop $mode: $failures failure(s)"
  exit 1
fi
echo "interop $mode: all checks passed"
