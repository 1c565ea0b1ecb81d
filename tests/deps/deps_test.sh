#!/usr/bin/env bash
# deps_test.sh — every project #include follows the arrows of README "Architecture".
#
# Each folder may include headers only from the folders listed for it below; the same arrows are
# the link lines of its CMake library, so a forbidden include is caught here even when it would
# happen to compile. Usage: deps_test.sh [SOURCE_ROOT]. Exit 1 naming every violation.
set -euo pipefail
root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$root"

# folder -> folders it may include from (itself is always allowed).
declare -A allowed=(
  [base]=""
  [pki]="base"
  [k8s]="base"
  [ca/core]="base pki"
  [ca/trust]="base pki ca/core"
  [ca/controller]="base pki ca/core"
  [ca/local]="base pki ca/core ca/controller"
  [ca/kube]="base pki k8s ca/core ca/controller ca/trust"
  [ca/grpc]="base pki k8s proto ca/core"
  [ca/nodeagent]="base pki proto"
  [ca/inspect]="base pki ca/core"
  [ca/daemon]="base pki k8s proto ca/core ca/controller ca/local ca/kube ca/grpc ca/trust"
  [ca/cmd]="base pki k8s ca/core ca/controller ca/daemon ca/inspect ca/nodeagent ca/kube ca/local ca/trust"
)
# Generated protobuf headers are included as "istio/..." and belong to proto/.
header_folder() {
  case "$1" in
    istio/*|google/*) echo proto ;;
    ca/*) echo "${1%/*}" ;;
    *) echo "${1%%/*}" ;;
  esac
}

violations=0
checked=0
for folder in "${!allowed[@]}"; do
  for file in $(find "$folder" -maxdepth 1 -type f \( -name '*.h' -o -name '*.cc' \) | sort); do
    checked=$((checked + 1))
    while IFS= read -r line; do
      inc=${line#*\"}; inc=${inc%%\"*}
      target=$(header_folder "$inc")
      [[ "$target" == "$folder" ]] && continue
      ok=0
      for a in ${allowed[$folder]}; do [[ "$a" == "$target" ]] && ok=1; done
      if [[ $ok -eq 0 ]]; then
        echo "forbidden include: $file includes \"$inc\" ($folder may include: ${allowed[$folder]:-nothing})"
        violations=$((violations + 1))
      fi
    done < <(grep -E '^\s*#\s*include\s+"' "$file" || true)
  done
done
# Every folder with sources must have a rule, so a new folder cannot escape the check.
for dir in $(find base pki k8s ca -type f \( -name '*.h' -o -name '*.cc' \) -printf '%h\n' | sort -u); do
  if [[ -z "${allowed[$dir]+x}" ]]; then
    echo "no dependency rule for folder $dir (add it to $0 and to the README map)"
    violations=$((violations + 1))
  fi
done
echo "deps_test: $checked files checked, $violations violations"
[[ $violations -eq 0 ]]
