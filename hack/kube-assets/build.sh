#!/usr/bin/env bash
# Builds the Kubernetes control plane that Isotope's Kubernetes tests run
# against, from pinned Go modules only (nothing is fetched except through
# the Go module proxy): kube-apiserver, kube-controller-manager and
# kube-scheduler from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3.
# The versions are the ones pinned in hack/kube-assets/go.mod.
#
# Usage: hack/kube-assets/build.sh [binary...]
#   With no arguments, builds all four; etcd and kube-apiserver first (all
#   that envtest needs), then kube-controller-manager and kube-scheduler.
#   Prints the assets directory as its last line.
#
# Output directory:
#   ${ISOTOPE_KUBE_ASSETS:-$HOME/.cache/isotope/kube-assets/<k8s>-<etcd>}
#
# Idempotent: a binary is rebuilt only when it is missing or its stamp
# (pinned versions + Go version + go.sum digest) differs. Binaries are
# linked under a temporary name and renamed into place, so an interrupted
# build never leaves a half-written binary behind.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# Keep these in step with go.mod and internal/testing/kubetest (a test checks).
K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.3

dir="${ISOTOPE_KUBE_ASSETS:-$HOME/.cache/isotope/kube-assets/$K8S_VERSION-$ETCD_VERSION}"
mkdir -p "$dir"

go_version="$(go env GOVERSION)"
sum_digest="$(sha256sum go.sum | cut -c1-16)"
stamp_text="k8s=$K8S_VERSION etcd=$ETCD_VERSION go=$go_version go.sum=$sum_digest"

# The binaries report the release they were built from (kubectl version,
# discovery clients); without these they would say v0.0.0-master.
k8s_minor="${K8S_VERSION#v1.}"
k8s_minor="${k8s_minor%%.*}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
	k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

pkg_of() {
	case "$1" in
	etcd) echo go.etcd.io/etcd/server/v3 ;;
	kube-apiserver | kube-controller-manager | kube-scheduler) echo "k8s.io/kubernetes/cmd/$1" ;;
	*)
		echo "unknown binary: $1 (want etcd, kube-apiserver, kube-controller-manager, kube-scheduler)" >&2
		exit 2
		;;
	esac
}

up_to_date() {
	[[ -x "$dir/$1" && -f "$dir/.stamp-$1" && "$(cat "$dir/.stamp-$1")" == "$stamp_text" ]]
}

build() {
	local bin="$1" pkg ldflags tmp start
	pkg="$(pkg_of "$bin")"
	if up_to_date "$bin"; then
		echo "$bin: up to date ($stamp_text)"
		return
	fi
	ldflags="-s -w"
	[[ "$bin" == kube-* ]] && ldflags="$k8s_ldflags"
	tmp="$dir/.$bin.tmp.$$"
	trap 'rm -f "$tmp"' EXIT
	start=$SECONDS
	echo "$bin: building $pkg"
	CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg"
	rm -f "$dir/.stamp-$bin"
	mv -f "$tmp" "$dir/$bin"
	printf '%s' "$stamp_text" >"$dir/.stamp-$bin"
	trap - EXIT
	echo "$bin: built in $((SECONDS - start))s"
}

bins=("$@")
if [[ ${#bins[@]} -eq 0 ]]; then
	bins=(etcd kube-apiserver kube-controller-manager kube-scheduler)
fi
total=$SECONDS
for b in "${bins[@]}"; do
	build "$b"
done
echo "all built in $((SECONDS - total))s"
echo "$dir"
