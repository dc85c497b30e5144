#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy into bin/tools, for the
# kubernetes tests (there is no kubelet: Pods never run; the tests act as the
# missing controllers). k8s.io/kubernetes replaces its staging modules with
# local paths, so a wrapper module generated here replaces each of them with
# the published k8s.io/<name> module of the matching version. Nothing here is
# committed but this script; the wrapper lives in a temp dir.
set -euo pipefail
KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
STAGING=v0.${KUBE_VERSION#v1.}
out=$(cd "$(dirname "$0")/.." && pwd)/bin/tools
mkdir -p "$out"
[ -x "$out/kube-apiserver" ] && exit 0
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
cat >go.mod <<MOD
module switchyard.local/kubebins

go 1.25

require k8s.io/kubernetes $KUBE_VERSION
MOD
echo 'package kubebins' >doc.go
go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >dl.json
modfile=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' dl.json)
# every "k8s.io/x => ./staging/src/k8s.io/x" line becomes "k8s.io/x => k8s.io/x $STAGING"
sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/src/k8s.io/.*#\1#p' "$modfile" | while read -r m; do
  echo "replace $m => $m $STAGING" >>go.mod
done
# no tidy: with nothing importing it, tidy would drop the requirement and a
# build would then take the newest kubernetes
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
GOFLAGS=-mod=mod go build -o "$out/kube-apiserver" -ldflags "-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" k8s.io/kubernetes/cmd/kube-apiserver
echo "built $out/kube-apiserver ($KUBE_VERSION)"
