#!/usr/bin/env bash
# Joins this worker to the cluster. Runs as root inside the VM (scripts/vagrant.sh join).
#
# Safe to run again, and it always ends with this worker's Node registered in the cluster:
# - joined to this cluster (same CA, kubelet running) and its Node listed: left alone;
# - joined, but its Node object deleted (a replaced join step ran `leave` first): kubelet is
#   restarted, which registers the Node again with the credentials it already has;
# - half-joined, or joined to a cluster that has since been rebuilt: reset, then joined.
# JOIN_COMMAND holds a bootstrap token: it is never printed and never put in an argument list
# other than kubeadm's own.
#
# Environment: NODE_NAME JOIN_COMMAND ("kubeadm join <ip>:6443 --token ... --discovery-token-ca-cert-hash sha256:...")
#   NODE_REGISTER_TIMEOUT (seconds to wait for the Node to be listed; default 180)
set -euo pipefail
exec 1>&2

: "${NODE_NAME:?}" "${JOIN_COMMAND:?}"

# K8S_LAB_NODE_ROOT relocates the node's files, for running this script outside a VM.
ROOT=${K8S_LAB_NODE_ROOT:-}
KUBELET_CONF=$ROOT/etc/kubernetes/kubelet.conf
CA=$ROOT/etc/kubernetes/pki/ca.crt
STAMP=$ROOT/var/lib/k8s-lab/joined-ca.sha256
# What node preparation decided for this node: kubelet settings (a kubeadm patch) and the
# preflight checks it cannot pass (SystemVerification on cgroup v1).
PATCHES=$ROOT/etc/kubernetes/k8s-lab-patches
IGNORED=$ROOT/var/lib/k8s-lab/preflight-ignore

log() { echo "[$NODE_NAME] $*"; }
die() {
  echo "[$NODE_NAME] error: $*"
  exit 1
}

# The Node as the API server lists it, asked with kubelet's own credentials (a node may read
# its own Node object).
node_registered() {
  kubectl --kubeconfig "$KUBELET_CONF" get node "$NODE_NAME" -o name >/dev/null 2>&1
}

wait_registered() {
  local deadline=$((SECONDS + ${NODE_REGISTER_TIMEOUT:-180}))
  until node_registered; do
    ((SECONDS < deadline)) || die "node $NODE_NAME is not listed by the API server $((${NODE_REGISTER_TIMEOUT:-180}))s after joining (journalctl -u kubelet says why)"
    sleep 2
  done
  log "registered as node $NODE_NAME"
}

main() {
  local args=() ca_hash ignore
  read -r -a args <<<"$JOIN_COMMAND"
  if [ "${#args[@]}" -lt 3 ] || [ "${args[0]}" != kubeadm ] || [ "${args[1]}" != join ]; then
    die "JOIN_COMMAND is not a kubeadm join command"
  fi
  [[ $JOIN_COMMAND =~ --discovery-token-ca-cert-hash[[:space:]]+(sha256:[0-9a-f]+) ]] ||
    die "JOIN_COMMAND carries no --discovery-token-ca-cert-hash"
  ca_hash=${BASH_REMATCH[1]}
  mkdir -p "$(dirname "$STAMP")"

  if [ -f "$KUBELET_CONF" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$ca_hash" ] &&
    systemctl is-active --quiet kubelet; then
    if node_registered; then
      log "already joined to this cluster"
      exit 0
    fi
    # kubelet registers its Node when it starts; a running kubelet whose Node was deleted
    # does not, so restart it.
    log "joined to this cluster but node $NODE_NAME is not listed: restarting kubelet to register it again"
    systemctl restart kubelet
    wait_registered
    exit 0
  fi

  if [ -e "$KUBELET_CONF" ] || [ -e "$CA" ]; then
    log "resetting a half-finished join or a join to an earlier cluster"
    kubeadm reset -f
    rm -rf "$ROOT"/etc/cni/net.d/* "$ROOT/var/lib/cni" "$ROOT/run/flannel"
    ip link delete cni0 2>/dev/null || true
    ip link delete flannel.1 2>/dev/null || true
  fi
  rm -f "$STAMP"

  log "joining the cluster"
  ignore=$(paste -sd, "$IGNORED" 2>/dev/null || true)
  "${args[@]}" --node-name "$NODE_NAME" --patches "$PATCHES" ${ignore:+"--ignore-preflight-errors=$ignore"}
  echo "$ca_hash" >"$STAMP"
  wait_registered
  log "joined"
}

if [ "${K8S_LAB_SOURCE_ONLY:-}" != 1 ]; then
  main
fi
