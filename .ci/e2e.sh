#!/usr/bin/env bash
# make e2e: a real kube-apiserver (built once by install-peers.sh from the Go module proxy,
# about 5 minutes) and etcd send their audit webhook to saker: the seed scenario, and a
# privileged pod applied server-side with the extras pack on. Needs etcd and kubectl
# (install-peers.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
# kube-apiserver is built by install-peers.sh (make peers, a prerequisite of make e2e).
go test -tags e2e -race -run "^TestKubeAPIServer(AuditWebhook|ServerSideApplyExtras)$" -count=1 -v ./cmd/saker
