#!/usr/bin/env bash
# deploy/check.sh — render deploy/ offline and check the objects istio-ca needs.
# Uses `kubectl kustomize` when kubectl is installed (it is not a Debian 12 package; any
# kubectl >= 1.14 embeds kustomize); otherwise only checks that every manifest parses as YAML.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v kubectl >/dev/null; then
  echo "deploy/check.sh: kubectl not found; checking that the manifests parse as YAML only"
  /usr/bin/python3 - "$root/deploy" <<'PY'
import sys, pathlib, yaml
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.yaml")):
    list(yaml.safe_load_all(p.read_text()))
    print("ok", p)
PY
  exit 0
fi
for dir in deploy deploy/base deploy/overlays/plugged-ca; do
  out=$(kubectl kustomize "$root/$dir")
  /usr/bin/python3 - "$dir" <<PY
import sys, yaml
docs = [d for d in yaml.safe_load_all('''$out''') if d]
kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
need = {("Namespace", "istio-system"), ("ServiceAccount", "istio-ca"), ("ClusterRole", "istio-ca"),
        ("ClusterRoleBinding", "istio-ca"), ("Role", "istio-ca-leader-election"),
        ("RoleBinding", "istio-ca-leader-election"), ("Deployment", "istio-ca"), ("Service", "istio-ca")}
missing = need - kinds
assert not missing, f"missing objects: {missing}"
dep = next(d for d in docs if d["kind"] == "Deployment")
spec = dep["spec"]["template"]["spec"]
c = spec["containers"][0]
assert dep["spec"]["replicas"] == 2
assert spec["securityContext"]["runAsNonRoot"] is True
assert c["securityContext"]["readOnlyRootFilesystem"] is True
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert "probe" in c["livenessProbe"]["exec"]["command"]
assert {p["containerPort"] for p in c["ports"]} == {8060, 15014}
role = next(d for d in docs if d["kind"] == "ClusterRole")
verbs = {r["resources"][0]: set(r["verbs"]) for r in role["rules"]}
assert verbs["serviceaccounts"] == {"get", "list", "watch"}
assert verbs["tokenreviews"] == {"create"}
assert verbs["configmaps"] == {"create", "get", "list", "watch", "update"}
assert verbs["namespaces"] == {"get", "list", "watch"}
assert "leases" not in verbs, "leases must be namespaced (Role), not cluster-wide"
if "plugged-ca" in sys.argv[1]:
    assert any(v.get("secret", {}).get("secretName") == "cacerts" for v in spec["volumes"])
    assert any(m["mountPath"] == "/etc/cacerts" for m in c["volumeMounts"])
    assert "--signing-cert=/etc/cacerts/ca-cert.pem" in c["args"]
    assert not any(a.startswith("--self-signed-ca") for a in c["args"])
print(f"ok {sys.argv[1]}: {len(docs)} objects")
PY
done
