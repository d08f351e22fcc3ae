#!/usr/bin/env bash
# Joins this worker to the cluster. Runs as root inside the VM (scripts/vagrant.sh join).
#
# Safe to run again: a worker already joined to this cluster (same CA, kubelet running) is left
# alone; one that half-joined, or joined a cluster that has since been rebuilt, is reset first.
# JOIN_COMMAND holds a bootstrap token: it is never printed and never put in an argument list
# other than kubeadm's own.
#
# Environment: NODE_NAME JOIN_COMMAND ("kubeadm join <ip>:6443 --token ... --discovery-token-ca-cert-hash sha256:...")
set -euo pipefail
exec 1>&2

: "${NODE_NAME:?}" "${JOIN_COMMAND:?}"

STAMP=/var/lib/k8s-lab/joined-ca.sha256

log() { echo "[$NODE_NAME] $*"; }
die() {
  echo "[$NODE_NAME] error: $*"
  exit 1
}

main() {
  local args=() ca_hash
  read -r -a args <<<"$JOIN_COMMAND"
  if [ "${#args[@]}" -lt 3 ] || [ "${args[0]}" != kubeadm ] || [ "${args[1]}" != join ]; then
    die "JOIN_COMMAND is not a kubeadm join command"
  fi
  [[ $JOIN_COMMAND =~ --discovery-token-ca-cert-hash[[:space:]]+(sha256:[0-9a-f]+) ]] ||
    die "JOIN_COMMAND carries no --discovery-token-ca-cert-hash"
  ca_hash=${BASH_REMATCH[1]}
  mkdir -p "$(dirname "$STAMP")"

  if [ -f /etc/kubernetes/kubelet.conf ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$ca_hash" ] &&
    systemctl is-active --quiet kubelet; then
    log "already joined to this cluster"
    exit 0
  fi

  if [ -e /etc/kubernetes/kubelet.conf ] || [ -e /etc/kubernetes/pki/ca.crt ]; then
    log "resetting a half-finished join or a join to an earlier cluster"
    kubeadm reset -f
    rm -rf /etc/cni/net.d/* /var/lib/cni /run/flannel
    ip link delete cni0 2>/dev/null || true
    ip link delete flannel.1 2>/dev/null || true
  fi
  rm -f "$STAMP"

  log "joining the cluster"
  "${args[@]}" --node-name "$NODE_NAME"
  echo "$ca_hash" >"$STAMP"
  log "joined"
}

main
