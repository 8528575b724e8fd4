#!/usr/bin/env bash
# Builds `helm` from its pinned Go module (helm.sh/helm/v3, see go.mod),
# for the chart render test (deploy/helm). Nothing is fetched except
# through the Go module proxy. This is a separate module so the main
# module does not depend on helm's large dependency tree (oras, docker
# credential helpers, kubectl); its k8s.io modules are pinned to the
# main module's v0.37.2 so both share compiled packages in the build cache.
#
# Usage: hack/helm/build.sh
#   Prints the binary's path as its last line.
#
# Output: ${ISOTOPE_HELM:-$HOME/.cache/isotope/helm/<version>/helm}
#
# Idempotent: rebuilt only when missing or its stamp (helm version, Go
# version, go.sum digest) differs; linked under a temporary name and
# renamed into place, so an interrupted build leaves no broken binary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# Keep in step with go.mod and deploy/helm's render test (a test checks).
HELM_VERSION=v3.22.0

out="${ISOTOPE_HELM:-$HOME/.cache/isotope/helm/$HELM_VERSION/helm}"
mkdir -p "$(dirname "$out")"
stamp="$(dirname "$out")/.stamp-$(basename "$out")"
stamp_text="helm=$HELM_VERSION go=$(go env GOVERSION) go.sum=$(sha256sum go.sum | cut -c1-16)"

if [[ -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$stamp_text" ]]; then
	echo "helm: up to date ($stamp_text)"
	echo "$out"
	exit 0
fi
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$SECONDS
echo "helm: building helm.sh/helm/v3/cmd/helm $HELM_VERSION"
CGO_ENABLED=0 go build -mod=readonly -trimpath \
	-ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
	-o "$tmp" helm.sh/helm/v3/cmd/helm
rm -f "$stamp"
mv -f "$tmp" "$out"
printf '%s' "$stamp_text" >"$stamp"
trap - EXIT
echo "helm: built in $((SECONDS - start))s"
echo "$out"
