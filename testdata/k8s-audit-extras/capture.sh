#!/usr/bin/env bash
# Captures the audit traces of this folder from a real kube-apiserver (the one `make e2e`
# uses: built by .ci/install-peers.sh into $SAKER_PEERS) on a fresh etcd, driven by kubectl.
# Usage: testdata/k8s-audit-extras/capture.sh   (rewrites traces/; needs etcd, kubectl, python3)
# The steps are below, each a kubectl command; the resulting audit log (JSON lines, the
# --audit-log-path format) is split into one trace per gap by split.py.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
P=${SAKER_PEERS:-/tmp/saker-peers}
KAPI=${KUBE_APISERVER:-$P/kube-apiserver}
ETCD=$(command -v etcd || echo "$P/etcd")
KUBECTL=$(command -v kubectl || echo "$P/kubectl")
for b in "$KAPI" "$ETCD" "$KUBECTL"; do
  [ -x "$b" ] || { echo "capture: $b not found (run .ci/install-peers.sh)" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

client=$(free_port) peer=$(free_port) secure=$(free_port)
"$ETCD" --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$client" \
  --advertise-client-urls "http://127.0.0.1:$client" --listen-peer-urls "http://127.0.0.1:$peer" \
  >"$work/etcd.log" 2>&1 &
pids+=($!)

echo 'capture-admin-token,admin,1,"system:masters"' >"$work/tokens.csv"
openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
"$KAPI" --etcd-servers="http://127.0.0.1:$client" --bind-address=127.0.0.1 --secure-port="$secure" \
  --cert-dir="$work/certs" --service-account-key-file="$work/sa.key" \
  --service-account-signing-key-file="$work/sa.key" --service-account-issuer=https://kubernetes.default.svc \
  --service-cluster-ip-range=10.96.0.0/24 --token-auth-file="$work/tokens.csv" \
  --authorization-mode=RBAC --allow-privileged=true \
  --audit-policy-file="$HERE/audit-policy.yaml" --audit-log-path="$work/audit.log" --audit-log-format=json \
  >"$work/kube-apiserver.log" 2>&1 &
pids+=($!)

cat >"$work/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$secure", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: capture-admin-token}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
KC
k() { echo "+ kubectl $*" >&2; "$KUBECTL" --kubeconfig "$work/kubeconfig" "$@"; }

for _ in $(seq 180); do
  "$KUBECTL" --kubeconfig "$work/kubeconfig" get --raw /readyz >/dev/null 2>&1 && break
  sleep 1
done
k get --raw /readyz >/dev/null
# The default service account is made by the controller-manager, which does not run here;
# pods need it to be admitted.
k create serviceaccount default

# 1. Server-side apply of pods (patch 201), a re-apply that changes one (patch 200), and a
#    label patch that does not carry the pod spec.
k apply --server-side -f "$HERE/manifests/ssa-pods.yaml"
k apply --server-side -f "$HERE/manifests/ssa-plain.yaml"
k apply --server-side -f "$HERE/manifests/ssa-privileged-relabelled.yaml"
k label pod ssa-privileged reviewed=yes
# 2. Server-side apply of a ConfigMap with a credential (patch 201), then changed (patch 200).
k apply --server-side -f "$HERE/manifests/ssa-configmap.yaml"
k apply --server-side -f "$HERE/manifests/ssa-configmap-changed.yaml"
# 3. kubectl debug: an ephemeral container through the ephemeralcontainers subresource.
k create -f "$HERE/manifests/debug-target.yaml"
k debug debug-target --image=busybox:1.36 -c dbg -- sleep 1d
k debug debug-target --image=alpine:3.20 -c dbg2 -- sleep 1d
# 4. system: ClusterRoles and Roles: the bootstrap created them (above, as system:apiserver);
#    now real changes by a user: a create, a modification, a deletion.
k create clusterrole system:capture-test --verb=get --resource=pods
k label clusterrole system:discovery capture=yes
k delete clusterrole system:heapster

# Stop the apiserver so the log is complete, then split it.
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
mkdir -p "$HERE/traces"
python3 "$HERE/split.py" "$work/audit.log" "$HERE/traces"
