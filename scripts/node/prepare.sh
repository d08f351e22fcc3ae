#!/usr/bin/env bash
# Prepares one lab node for kubeadm. Runs as root inside the VM (scripts/vagrant.sh run).
#
# Safe to run again at any point: every step checks what is there or overwrites whole files,
# nothing is appended. Everything it says goes to stderr; its only stdout is the last line, the
# name of the NIC that carries NODE_IP, which the program hands to the CNI and to MetalLB.
#
# Environment: NODE_NAME NODE_IP NODE_ROLE NETWORK_INTERFACE (may be empty) K8S_VERSION
# K8S_MINOR KUBE_PROXY_MODE CONTAINERD_VERSION RUNC_VERSION CNI_MANIFEST_URL CNI_MANIFEST_FILE
set -euo pipefail
exec 3>&1 1>&2

: "${NODE_NAME:?}" "${NODE_IP:?}" "${NODE_ROLE:?}" "${K8S_VERSION:?}" "${K8S_MINOR:?}"
: "${KUBE_PROXY_MODE:?}" "${CONTAINERD_VERSION:?}" "${RUNC_VERSION:?}"
: "${CNI_MANIFEST_URL:?}" "${CNI_MANIFEST_FILE:?}"
NETWORK_INTERFACE=${NETWORK_INTERFACE:-}

STATE=/var/lib/k8s-lab
CACHE=/var/cache/k8s-lab
CRI_SOCKET=unix:///run/containerd/containerd.sock
export DEBIAN_FRONTEND=noninteractive

log() { echo "[$NODE_NAME] $*" >&2; }
die() {
  echo "[$NODE_NAME] error: $*" >&2
  exit 1
}

# A fresh cloud image runs unattended-upgrades at first boot: wait for its lock, do not fail.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -qq "$@"; }

# Download to a temporary name and rename, so a cut-off download never looks complete.
fetch() {
  local url=$1 dest=$2
  curl -fsSL --retry 5 --retry-delay 2 -o "$dest.part" "$url"
  mv -f "$dest.part" "$dest"
}

# Writes stdin to a file unless it already holds exactly that: CHANGED=1 when it wrote.
write_file() {
  local path=$1 content
  content=$(cat)
  CHANGED=0
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    return 0
  fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path.tmp"
  mv -f "$path.tmp" "$path"
  CHANGED=1
}

# The NIC whose IPv4 address is $1: eth1 on some boxes, enp0s8 on others.
interface_for() {
  ip -o -4 addr show | awk -v want="$1" '{ split($4, a, "/"); if (a[1] == want) { print $2; exit } }'
}

host_only_interface() {
  local found
  found=$(interface_for "$NODE_IP")
  [ -n "$found" ] || die "no interface carries $NODE_IP; the VM's host-only NIC is missing or misconfigured (ip -4 addr: $(ip -o -4 addr show | awk '{print $2, $4}' | tr '\n' ' '))"
  if [ -n "$NETWORK_INTERFACE" ] && [ "$NETWORK_INTERFACE" != "$found" ]; then
    die "network.interface is $NETWORK_INTERFACE but $NODE_IP is on $found; set network.interface to $found or remove it"
  fi
  echo "$found"
}

disable_swap() {
  swapoff -a
  # Keep it off after a reboot: comment out fstab's swap entries, mask systemd's swap units.
  sed -ri '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#/' /etc/fstab
  systemctl mask swap.target >/dev/null 2>&1
  [ -z "$(swapon --noheadings)" ] || die "swap is still on: $(swapon --noheadings)"
}

kernel_settings() {
  local modules=(overlay br_netfilter) module
  if [ "$KUBE_PROXY_MODE" = ipvs ]; then
    modules+=(ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack)
  fi
  printf '%s\n' "${modules[@]}" | write_file /etc/modules-load.d/k8s-lab.conf
  for module in "${modules[@]}"; do
    modprobe "$module"
  done
  write_file /etc/sysctl.d/99-k8s-lab.conf <<'CONF'
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
CONF
  sysctl --quiet --system
}

kubernetes_packages() {
  local want="${K8S_VERSION}-1.1" keyring=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
  local repo="https://pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/" extra=()
  if [ "$KUBE_PROXY_MODE" = ipvs ]; then
    extra=(ipset ipvsadm)
  fi
  if [ "$(dpkg-query -W -f='${Version} ' kubelet kubeadm kubectl 2>/dev/null)" = "$want $want $want " ] &&
    { [ ${#extra[@]} -eq 0 ] || dpkg-query -W "${extra[@]}" >/dev/null 2>&1; }; then
    log "kubelet, kubeadm and kubectl $want are installed"
    return
  fi
  log "installing kubelet, kubeadm and kubectl $want"
  mkdir -p /etc/apt/keyrings
  fetch "${repo}Release.key" "$CACHE/kubernetes-release.key"
  gpg --batch --yes --dearmor -o "$keyring" "$CACHE/kubernetes-release.key"
  echo "deb [signed-by=$keyring] $repo /" | write_file /etc/apt/sources.list.d/kubernetes.list
  apt_get update
  apt_get install -y --allow-change-held-packages --allow-downgrades \
    ca-certificates curl conntrack "kubelet=$want" "kubeadm=$want" "kubectl=$want" "${extra[@]}"
  apt-mark hold kubelet kubeadm kubectl >/dev/null
}

containerd_runtime() {
  local arch pause restart=0
  arch=$(dpkg --print-architecture)
  if [ "$(containerd --version 2>/dev/null | awk '{print $3}')" != "v$CONTAINERD_VERSION" ]; then
    log "installing containerd $CONTAINERD_VERSION"
    fetch "https://github.com/containerd/containerd/releases/download/v${CONTAINERD_VERSION}/containerd-${CONTAINERD_VERSION}-linux-${arch}.tar.gz" \
      "$CACHE/containerd.tar.gz"
    tar -C /usr/local -xzf "$CACHE/containerd.tar.gz"
    restart=1
  fi
  if [ "$(runc --version 2>/dev/null | awk 'NR == 1 {print $3}')" != "$RUNC_VERSION" ]; then
    log "installing runc $RUNC_VERSION"
    fetch "https://github.com/opencontainers/runc/releases/download/v${RUNC_VERSION}/runc.${arch}" "$CACHE/runc"
    install -m 0755 "$CACHE/runc" /usr/local/sbin/runc
    restart=1
  fi
  write_file /etc/systemd/system/containerd.service <<'UNIT'
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
UNIT
  [ "$CHANGED" = 0 ] || restart=1
  # kubeadm's own pause image, so the kubelet and containerd agree on the sandbox.
  pause=$(kubeadm config images list --kubernetes-version "v$K8S_VERSION" | grep '/pause:' | tail -n 1 || true)
  [ -n "$pause" ] || die "kubeadm listed no pause image for v$K8S_VERSION"
  write_file /etc/containerd/config.toml <<CONF
version = 3

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '$pause'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
CONF
  [ "$CHANGED" = 0 ] || restart=1
  write_file /etc/crictl.yaml <<CONF
runtime-endpoint: $CRI_SOCKET
image-endpoint: $CRI_SOCKET
CONF
  systemctl daemon-reload
  systemctl enable containerd >/dev/null 2>&1
  if [ "$restart" = 1 ]; then
    systemctl restart containerd
  else
    systemctl start containerd
  fi
  # grep reads to the end: with -q it could exit early and fail the pipeline under pipefail.
  containerd config dump | grep 'SystemdCgroup = true' >/dev/null ||
    die "containerd did not take SystemdCgroup = true from /etc/containerd/config.toml"
}

kubelet_node_ip() {
  # Without it the kubelet reports the NAT NIC's 10.0.2.15, the same on every VirtualBox VM.
  write_file /etc/default/kubelet <<<"KUBELET_EXTRA_ARGS=--node-ip=$NODE_IP"
  if [ "$CHANGED" = 1 ]; then
    systemctl daemon-reload
    if systemctl is-active --quiet kubelet; then
      systemctl restart kubelet
    fi
  fi
  systemctl enable kubelet >/dev/null 2>&1
}

pull_images() {
  local images=() image pids=() pid
  fetch_cni_manifest
  if [ "$NODE_ROLE" = control-plane ]; then
    mapfile -t images < <(kubeadm config images list --kubernetes-version "v$K8S_VERSION" 2>/dev/null)
  else
    mapfile -t images < <(kubeadm config images list --kubernetes-version "v$K8S_VERSION" 2>/dev/null | grep -E '/(kube-proxy|pause):')
  fi
  mapfile -t -O "${#images[@]}" images < <(awk '$1 == "image:" || $1 == "-" && $2 == "image:" { print $NF }' "$STATE/cni/$CNI_MANIFEST_FILE" | tr -d '"' | sort -u)
  log "pre-pulling ${#images[@]} images"
  for image in "${images[@]}"; do
    crictl pull "$image" >/dev/null &
    pids+=("$!")
  done
  # Best effort: the kubelet pulls whatever is missing later; a slow registry must not fail here.
  for pid in "${pids[@]}"; do
    wait "$pid" || log "warning: an image pull failed; the kubelet will retry it"
  done
}

fetch_cni_manifest() {
  mkdir -p "$STATE/cni"
  if [ ! -s "$STATE/cni/$CNI_MANIFEST_FILE" ]; then
    fetch "$CNI_MANIFEST_URL" "$STATE/cni/$CNI_MANIFEST_FILE"
  fi
}

main() {
  local interface
  mkdir -p "$STATE" "$CACHE"
  interface=$(host_only_interface)
  log "host-only interface: $interface ($NODE_IP)"
  disable_swap
  kernel_settings
  kubernetes_packages
  containerd_runtime
  kubelet_node_ip
  pull_images
  log "prepared"
  echo "$interface" >&3
}

if [ "${K8S_LAB_SOURCE_ONLY:-}" != 1 ]; then
  main
fi
