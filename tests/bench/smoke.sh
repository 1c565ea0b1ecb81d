#!/usr/bin/env bash
# bench_tools_smoke: scripts/bench-grpc and scripts/bench-stampede run for a second or two with
# tiny N against the real daemon, so the tools do not rot. Asserts that they finish, that calls
# succeeded, and that the fields the README's table is made from are printed.
# Usage: tests/bench/smoke.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
export ISTIOCA_BENCH_BUILD=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
has() { grep -q -- "$2" <<<"$1" || fail "no \"$2\" in the output above"; }

cfssl_flag=--no-cfssl
command -v cfssl >/dev/null && cfssl_flag=
# shellcheck disable=SC2086
out=$("$src/scripts/bench-grpc" --no-build $cfssl_flag --seconds 1 --channels 2 --inflight 2)
echo "$out"
has "$out" "raw crypto: *sign_us=[0-9.]* verify_us=[0-9.]* raw_us=[0-9.]*"
has "$out" "istio-ca max: *calls=[1-9][0-9]* errors=[0-9]* rate=[0-9.]*/s p50_ms=[0-9.]* p99_ms=[0-9.]*"
has "$out" "istio-ca max:.*client_cpu_us=[0-9.]* server_cpu_us=[0-9.]*"
has "$out" "istio-ca half: *calls=[1-9][0-9]* .*p99_ms=[0-9.]*"
has "$out" "server CPU / raw crypto: [0-9.]*x (target <= 1.5x: \(met\|NOT met\))"
has "$out" "istio-ca p99 at half the maximum rate: [0-9.]* ms (target < 5 ms: "
has "$out" "istio-ca peak RSS (VmHWM): [0-9.]* MB"
if [ -z "$cfssl_flag" ]; then
  has "$out" "cfssl max: *calls=[1-9][0-9]* .*server_cpu_us=[0-9.]*"
  has "$out" "throughput istio-ca / cfssl: [0-9.]*x (target >= 1.7x: "
fi

out=$("$src/scripts/bench-stampede" --no-build --service-accounts 6 --pods 4 --max-seconds 30)
echo "$out"
has "$out" "callers=6 certified=6 all_certified_s=[0-9.]* p50_s=[0-9.]* p99_s=[0-9.]*"
has "$out" "callers=4 certified=4 all_certified_s=[0-9.]*"
has "$out" "daemon /metrics citadel_server_csr_refusal_count during the stampede:"
has "$out" "scenario a (6 distinct service accounts): all certified after [0-9.]* s, p99 [0-9.]* s (target <= 5 s: "
has "$out" "scenario b (4 pods of one service account (pod-bound tokens)): all certified after [0-9.]* s"
echo "PASS"
