#!/usr/bin/env bash
# make e2e: a real kube-apiserver (built once from the Go module proxy, about 5 minutes) and
# etcd send their audit webhook to saker. Needs etcd and kubectl (install-peers.sh installs
# etcd; kubectl comes with the machine or from $SAKER_PEERS).
set -euo pipefail
cd "$(dirname "$0")/.."
P=${SAKER_PEERS:-/tmp/saker-peers}
if [ ! -x "$P/kube-apiserver" ]; then
  WRAP=${KUBE_APISERVER_MODULE:-.ci/peers/kube-apiserver}
  if [ ! -f "$WRAP/go.mod" ]; then
    echo "e2e: no kube-apiserver wrapper module at $WRAP (set KUBE_APISERVER_MODULE)" >&2
    exit 1
  fi
  t=$(mktemp -d)
  cp "$WRAP"/go.mod "$WRAP"/go.sum "$WRAP"/*.go "$t/"
  V=k8s.io/component-base/version
  echo "e2e: building kube-apiserver (first run only, ~5 min)"
  (cd "$t" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X $V.gitVersion=v1.34.4 -X $V.gitMajor=1 -X $V.gitMinor=34" \
     -o "$P/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
fi
go test -tags e2e -race -run TestKubeAPIServerAuditWebhook -count=1 -v ./cmd/saker
