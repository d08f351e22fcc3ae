#!/usr/bin/env bash
# Initialises the control plane with kubeadm. Runs as root inside the VM (scripts/vagrant.sh run).
#
# Safe to run again: a control plane initialised with this exact configuration is left alone
# (after waiting for its API, which may still be starting after a reboot); a half-finished attempt
# (no completion stamp) or one made with another configuration is reset and initialised afresh.
#
# Environment: NODE_NAME KUBEADM_CONFIG (the whole kubeadm configuration, built by the program)
# CNI (flannel|calico: part of the cluster's identity, since one cannot replace the other in place)
set -euo pipefail
exec 1>&2

: "${NODE_NAME:?}" "${KUBEADM_CONFIG:?}" "${CNI:?}"

CONFIG=/etc/kubernetes/k8s-lab-kubeadm.yaml
STAMP=/var/lib/k8s-lab/init.sha256
# Preflight checks node preparation found this node cannot pass (SystemVerification on cgroup v1).
IGNORED=/var/lib/k8s-lab/preflight-ignore
ADMIN=/etc/kubernetes/admin.conf

log() { echo "[$NODE_NAME] $*"; }
die() {
  echo "[$NODE_NAME] error: $*"
  exit 1
}

api_ready() {
  kubectl --kubeconfig "$ADMIN" get --raw=/readyz >/dev/null 2>&1
}

wait_for_api() {
  local tries=$1
  while ! api_ready; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 2
  done
}

# What `kubeadm reset` leaves behind and a new cluster trips over: CNI config and bridges with
# the old pod subnet, flannel's lease, the old admin kubeconfig copies.
clean_leftovers() {
  local link
  rm -rf /etc/cni/net.d/* /var/lib/cni /run/flannel /root/.kube /home/vagrant/.kube
  for link in cni0 flannel.1 vxlan.calico tunl0 kube-ipvs0; do
    ip link delete "$link" 2>/dev/null || true
  done
}

main() {
  local want ignore
  want=$(printf '%s\ncni: %s\n' "$KUBEADM_CONFIG" "$CNI" | sha256sum | cut -d' ' -f1)
  mkdir -p "$(dirname "$STAMP")"

  if [ -f "$ADMIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    log "control plane already initialised with this configuration; waiting for its API"
    wait_for_api 90 || die "the API server on $NODE_NAME is not ready after 3 minutes (sudo crictl ps -a; journalctl -u kubelet)"
    log "API server ready"
    exit 0
  fi

  if [ -e "$ADMIN" ] || [ -e /etc/kubernetes/manifests/kube-apiserver.yaml ] || [ -d /var/lib/etcd/member ]; then
    log "resetting a half-finished or differently configured control plane"
    kubeadm reset -f
    clean_leftovers
  fi
  rm -f "$STAMP"

  printf '%s\n' "$KUBEADM_CONFIG" >"$CONFIG"
  # --skip-token-print: kubeadm's own join token must not reach the step's log. Workers mint
  # their own, short-lived tokens when they join.
  ignore=$(paste -sd, "$IGNORED" 2>/dev/null || true)
  kubeadm init --config "$CONFIG" --skip-token-print ${ignore:+"--ignore-preflight-errors=$ignore"}
  wait_for_api 90 || die "the API server did not become ready after kubeadm init"

  # kubectl for `vagrant ssh` users.
  if install -d -o vagrant -g vagrant /home/vagrant/.kube 2>/dev/null; then
    install -m 0600 -o vagrant -g vagrant "$ADMIN" /home/vagrant/.kube/config
  fi

  echo "$want" >"$STAMP"
  log "control plane initialised"
}

main
