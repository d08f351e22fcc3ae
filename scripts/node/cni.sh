#!/usr/bin/env bash
# Installs the pod network (flannel or calico) on the host-only NIC. Runs as root on the control
# plane (scripts/vagrant.sh run).
#
# Safe to run again: the manifest is cached, patched into a fresh file each time and applied
# server-side, which converges whatever a previous attempt left.
#
# Environment: NODE_NAME (the control plane) CNI (flannel|calico) CNI_MANIFEST_URL
# CNI_MANIFEST_FILE POD_CIDR IFACE (the NIC name node preparation found)
set -euo pipefail
exec 1>&2

STATE=/var/lib/k8s-lab/cni
ADMIN=/etc/kubernetes/admin.conf

log() { echo "[${NODE_NAME:-cni}] $*"; }
die() {
  echo "[${NODE_NAME:-cni}] error: $*"
  exit 1
}

# flannel: --iface pins the VXLAN to the host-only NIC (it would pick the NAT NIC, the default
# route's); the pod network comes from POD_CIDR.
patch_flannel() {
  local in=$1 out=$2
  sed -e "s#^\([[:space:]]*\)- --kube-subnet-mgr\$#&\n\1- --iface=$IFACE#" \
    -e "s#\"Network\": \"[0-9./]*\"#\"Network\": \"$POD_CIDR\"#" "$in" >"$out"
  [ "$(grep -c -- "- --iface=$IFACE\$" "$out")" -ge 1 ] ||
    die "could not add --iface to the flannel manifest; has its layout changed?"
  grep -q "\"Network\": \"$POD_CIDR\"" "$out" || die "could not set the pod network in the flannel manifest"
}

# calico: IP_AUTODETECTION_METHOD picks the host-only NIC; CALICO_IPV4POOL_CIDR replaces
# calico's default pool, 192.168.0.0/16, which overlaps the host-only network.
patch_calico() {
  local in=$1 out=$2
  sed -e "s#^\([[:space:]]*\)\# - name: CALICO_IPV4POOL_CIDR\$#\1- name: CALICO_IPV4POOL_CIDR#" \
    -e "s#^\([[:space:]]*\)\#   value: \"192.168.0.0/16\"\$#\1  value: \"$POD_CIDR\"#" \
    -e "s#^\([[:space:]]*\)- name: CALICO_IPV4POOL_VXLAN\$#\1- name: IP_AUTODETECTION_METHOD\n\1  value: \"interface=$IFACE\"\n&#" \
    "$in" >"$out"
  [ "$(grep -c "value: \"interface=$IFACE\"" "$out")" = 1 ] ||
    die "could not set IP_AUTODETECTION_METHOD in the calico manifest; has its layout changed?"
  if ! grep -q -- "- name: CALICO_IPV4POOL_CIDR" "$out" || ! grep -q "value: \"$POD_CIDR\"" "$out"; then
    die "could not set CALICO_IPV4POOL_CIDR in the calico manifest; has its layout changed?"
  fi
}

main() {
  : "${NODE_NAME:?}" "${CNI:?}" "${CNI_MANIFEST_URL:?}" "${CNI_MANIFEST_FILE:?}" "${POD_CIDR:?}" "${IFACE:?}"
  local manifest=$STATE/$CNI_MANIFEST_FILE patched
  mkdir -p "$STATE"
  if [ ! -s "$manifest" ]; then
    curl -fsSL --retry 5 --retry-delay 2 -o "$manifest.part" "$CNI_MANIFEST_URL"
    mv -f "$manifest.part" "$manifest"
  fi
  patched=$STATE/$CNI-applied.yaml
  case $CNI in
    flannel) patch_flannel "$manifest" "$patched" ;;
    calico) patch_calico "$manifest" "$patched" ;;
    *) die "unknown CNI '$CNI'" ;;
  esac

  log "applying $CNI on $IFACE for pods in $POD_CIDR"
  # Server-side: calico's CRDs are too large for client-side apply's annotation.
  kubectl --kubeconfig "$ADMIN" apply --server-side --force-conflicts -f "$patched"
  # The control plane turns Ready once the CNI serves it: from then on pods get IPs.
  kubectl --kubeconfig "$ADMIN" wait --for=condition=Ready "node/$NODE_NAME" --timeout=300s
  log "$CNI ready"
}

if [ "${K8S_LAB_SOURCE_ONLY:-}" != 1 ]; then
  main
fi
