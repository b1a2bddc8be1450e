#!/usr/bin/env python3
"""Splits the audit log capture.sh recorded into the traces of this folder.

Every trace line is a line of the log, byte for byte, except in
ephemeral-containers-pre-1.23.jsonl (see make_pre_123)."""
import json
import sys

log, out = sys.argv[1], sys.argv[2]
with open(log, "rb") as f:
    lines = [l for l in f.read().split(b"\n") if l.strip()]


def ref(ev):
    return ev.get("objectRef") or {}


traces = {
    # The whole log: the apiserver's bootstrap and every step of capture.sh.
    "kube-apiserver-v1.34.jsonl": lambda ev: True,
    "ssa-pods.jsonl": lambda ev: ref(ev).get("resource") == "pods"
    and ref(ev).get("name", "").startswith("ssa-"),
    "ssa-configmap.jsonl": lambda ev: ref(ev).get("resource") == "configmaps"
    and ref(ev).get("name") == "ssa-aws-creds",
    "ephemeral-containers.jsonl": lambda ev: ref(ev).get("resource") == "pods"
    and ref(ev).get("name") == "debug-target",
    "system-roles.jsonl": lambda ev: ref(ev).get("resource") in ("clusterroles", "roles")
    and ref(ev).get("name", "").startswith("system:"),
}
picked = {name: [] for name in traces}
for line in lines:
    ev = json.loads(line)
    for name, keep in traces.items():
        if keep(ev):
            picked[name].append(line)
for name, got in picked.items():
    with open(f"{out}/{name}", "wb") as f:
        f.write(b"".join(l + b"\n" for l in got))


def make_pre_123(ev):
    """The request shape of Kubernetes 1.16-1.22 for the same ephemeral container: kubectl
    debug sent an EphemeralContainers object (update of the ephemeralcontainers subresource)
    instead of patching the Pod. Derived from the captured event, since a 1.34 apiserver no
    longer accepts it."""
    spec = ev["requestObject"]["spec"]
    ev["verb"] = "update"
    ev["requestObject"] = {
        "kind": "EphemeralContainers",
        "apiVersion": "v1",
        "metadata": {"name": ref(ev)["name"], "namespace": ref(ev)["namespace"]},
        "ephemeralContainers": spec["ephemeralContainers"],
    }
    ev.pop("responseObject", None)
    return ev


pre = [make_pre_123(json.loads(l)) for l in picked["ephemeral-containers.jsonl"]
       if ref(json.loads(l)).get("subresource") == "ephemeralcontainers"]
with open(f"{out}/ephemeral-containers-pre-1.23.jsonl", "w") as f:
    for ev in pre[:1]:
        f.write(json.dumps(ev, separators=(",", ":")) + "\n")
