#!/usr/bin/env bash
# Prepares one lab node for kubeadm. Runs as root inside the node (scripts/vagrant.sh run).
#
# Safe to run again at any point: every step checks what is there or overwrites whole files,
# nothing is appended. Everything it says goes to stderr; its only stdout is the last line, the
# name of the NIC that carries NODE_IP, which the program hands to the CNI and to MetalLB.
#
# What it installs are release files, the same on Debian and Ubuntu: kubeadm, kubelet and kubectl
# (dl.k8s.io), containerd, runc, the CNI plugins and crictl (their releases), each checked
# against its checksum. They come from the offline bundle when BUNDLE names its directory on the
# node (then nothing is downloaded and the images are imported from it), else from upstream.
#
# A node that is a system container (vagrant.provider: docker) shares the host's kernel: modules
# are the host's, some sysctls are the host's, swap is the host's. What that changes is decided
# in one place, node_facts, from what the node sees, and ends up in the kubelet's configuration
# (a kubeadm patch) and containerd's.
#
# Environment: NODE_NAME NODE_IP NODE_ROLE NETWORK_INTERFACE (may be empty) K8S_VERSION
# KUBE_PROXY_MODE NODE_FILES (one "name path url checksum-url sha256" line per file; sha256 is
# "-" unless the bundle recorded it) NODE_IMAGES (one "name archive" line per image this node
# needs) BUNDLE (the bundle's directory on the node; empty: download)
set -euo pipefail
exec 3>&1 1>&2

: "${NODE_NAME:?}" "${NODE_IP:?}" "${NODE_ROLE:?}" "${K8S_VERSION:?}" "${KUBE_PROXY_MODE:?}"
: "${NODE_FILES:?}" "${NODE_IMAGES:?}"
NETWORK_INTERFACE=${NETWORK_INTERFACE:-}
BUNDLE=${BUNDLE:-}

# K8S_LAB_NODE_ROOT relocates every file this script writes, for running it outside a node.
ROOT=${K8S_LAB_NODE_ROOT:-}
STATE=$ROOT/var/lib/k8s-lab
CACHE=$ROOT/var/cache/k8s-lab
PATCHES=$ROOT/etc/kubernetes/k8s-lab-patches
FACTS=$STATE/node-facts
CRI_SOCKET=unix:///run/containerd/containerd.sock
export DEBIAN_FRONTEND=noninteractive

log() { echo "[$NODE_NAME] $*" >&2; }
die() {
  echo "[$NODE_NAME] error: $*" >&2
  exit 1
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

# -- what kind of node this is -------------------------------------------------------------

in_container() { [ -n "${CONTAINER_NODE:-}" ]; }

# CAP_SYS_RESOURCE (capability 24) is what setting a negative oom_score_adj takes.
has_sys_resource() {
  local mask
  mask=$(printf '%d' "0x$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)")
  (((mask >> 24) & 1))
}

node_facts() {
  CONTAINER_NODE=
  if systemd-detect-virt --container --quiet 2>/dev/null || [ -f /.dockerenv ]; then
    CONTAINER_NODE=$(systemd-detect-virt --container 2>/dev/null || echo docker)
  fi
  CGROUP_V1=
  [ -f /sys/fs/cgroup/cgroup.controllers ] || CGROUP_V1=1
  SYS_RESOURCE=1
  has_sys_resource || SYS_RESOURCE=
  mkdir -p "$STATE"
  {
    echo "container=${CONTAINER_NODE:-no}"
    echo "cgroup=$([ -n "$CGROUP_V1" ] && echo v1 || echo v2)"
    echo "sys_resource=$([ -n "$SYS_RESOURCE" ] && echo yes || echo no)"
  } | write_file "$FACTS"
  if [ -n "$CGROUP_V1" ]; then
    log "warning: this node has cgroup v1, which the kubelet refuses since Kubernetes 1.35 unless told otherwise;"
    log "  the lab tells it (failCgroupV1: false) and skips kubeadm's SystemVerification check. Prefer a host with cgroup v2."
    echo SystemVerification | write_file "$STATE/preflight-ignore"
  else
    : | write_file "$STATE/preflight-ignore"
  fi
  if in_container; then
    log "node is a $CONTAINER_NODE container: the host's kernel, modules and swap are left alone"
  fi
}

# -- network -------------------------------------------------------------------------------

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
  if in_container; then
    # swapoff here would turn off the host's swap. The kubelet tolerates it instead (failSwapOn: false).
    return 0
  fi
  swapoff -a
  # Keep it off after a reboot: comment out fstab's swap entries, mask systemd's swap units.
  sed -ri '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#/' "$ROOT/etc/fstab"
  systemctl mask swap.target >/dev/null 2>&1
  [ -z "$(swapon --noheadings)" ] || die "swap is still on: $(swapon --noheadings)"
}

# A module is there when the kernel lists it, however it got there (built in, or the host's).
module_present() {
  case $1 in
    br_netfilter) [ -d /proc/sys/net/bridge ] ;;
    overlay) grep -qw overlay /proc/filesystems ;;
    *) [ -d "/sys/module/$1" ] ;;
  esac
}

kernel_settings() {
  local modules=(overlay br_netfilter) module key want have
  if [ "$KUBE_PROXY_MODE" = ipvs ]; then
    modules+=(ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack)
  fi
  if ! in_container; then
    printf '%s\n' "${modules[@]}" | write_file "$ROOT/etc/modules-load.d/k8s-lab.conf"
  fi
  for module in "${modules[@]}"; do
    modprobe "$module" 2>/dev/null || module_present "$module" ||
      die "kernel module $module is missing and cannot be loaded$(in_container && echo " (a container node uses the host's modules: modprobe $module on the host)")"
  done
  write_file "$ROOT/etc/sysctl.d/99-k8s-lab.conf" <<'CONF'
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
CONF
  # Each key on its own: in a container some are the host's and read-only, which is fine as long
  # as they already hold the value.
  while read -r key _ want; do
    [ -n "$key" ] || continue
    sysctl -q -w "$key=$want" 2>/dev/null && continue
    have=$(sysctl -n "$key" 2>/dev/null || echo missing)
    [ "$have" = "$want" ] || die "sysctl $key is $have and cannot be set to $want"
  done <"$ROOT/etc/sysctl.d/99-k8s-lab.conf"
}

# -- release files -------------------------------------------------------------------------

# file_field NAME FIELD: a field of NAME's line in NODE_FILES (2 path, 3 url, 4 checksum url, 5 sha256).
file_field() {
  awk -v name="$1" -v field="$2" '$1 == name { print $field; found = 1 } END { exit !found }' <<<"$NODE_FILES" ||
    die "NODE_FILES names no '$1'"
}

# The SHA-256 an upstream checksum file gives for FILE_NAME: a bare digest, or the line naming it.
published_sha256() {
  local list=$1 name=$2
  awk -v name="$name" '
    NF == 1 && $1 ~ /^[0-9a-f]{64}$/ { bare = $1 }
    NF >= 2 && $1 ~ /^[0-9a-f]{64}$/ { file = $2; sub(/^\*/, "", file); n = split(file, parts, "/"); if (parts[n] == name) named = $1 }
    END { if (named != "") print named; else if (bare != "") print bare }' "$list"
}

# Download to a temporary name and rename, so a cut-off download never looks complete.
download() {
  curl -fsSL --retry 5 --retry-delay 2 -o "$2.part" "$1"
  mv -f "$2.part" "$2"
}

# fetch NAME: the checked release file NAME in $CACHE, from the bundle or from upstream; prints its path.
fetch() {
  local name=$1 path url sums sha dest want
  path=$(file_field "$name" 2)
  url=$(file_field "$name" 3)
  sums=$(file_field "$name" 4)
  sha=$(file_field "$name" 5)
  dest=$CACHE/files/${path#files/}
  mkdir -p "$(dirname "$dest")"
  if [ -n "$BUNDLE" ]; then
    [ -f "$BUNDLE/$path" ] || die "the bundle on this node has no $path; fill it with ./lab bundle fill"
    [ "$sha" != - ] || die "NODE_FILES gives no checksum for $path from the bundle"
    want=$sha
    if [ ! -f "$dest" ] || [ "$(sha256sum "$dest" | cut -d' ' -f1)" != "$want" ]; then
      cp "$BUNDLE/$path" "$dest.part"
      mv -f "$dest.part" "$dest"
    fi
  else
    if [ "$sha" != - ]; then
      want=$sha
    elif [ "$sums" != - ]; then
      download "$sums" "$dest.sums"
      want=$(published_sha256 "$dest.sums" "${url##*/}")
      [ -n "$want" ] || die "$sums lists no SHA-256 for ${url##*/}"
    else
      want=
    fi
    if [ ! -f "$dest" ] || { [ -n "$want" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" != "$want" ]; }; then
      log "downloading $url"
      download "$url" "$dest"
    fi
  fi
  if [ -n "$want" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" != "$want" ]; then
    rm -f "$dest"
    die "$path does not match its checksum $want; it was cut off or tampered with, run again to fetch it anew"
  fi
  echo "$dest"
}

# Kubernetes' packages until the lab installed release binaries: they would shadow or fight them.
drop_kubernetes_packages() {
  local installed
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' kubelet kubeadm kubectl 2>/dev/null | awk '$NF == "installed" { print $1 }' || true)
  [ -n "$installed" ] || return 0
  log "removing the Kubernetes packages ($(echo "$installed" | tr '\n' ' ')): the release binaries replace them"
  # shellcheck disable=SC2086 # one package per word
  apt-mark unhold $installed >/dev/null
  # shellcheck disable=SC2086
  apt-get -o DPkg::Lock::Timeout=600 -qq remove -y $installed >/dev/null
}

kubernetes_binaries() {
  local name file restart=0
  drop_kubernetes_packages
  for name in kubeadm kubelet kubectl; do
    file=$(fetch "$name")
    if ! cmp -s "$file" "$ROOT/usr/local/bin/$name"; then
      install -m 0755 "$file" "$ROOT/usr/local/bin/$name"
      [ "$name" != kubelet ] || restart=1
    fi
  done
  # The units the Kubernetes packages ship (kubernetes/release), for the binaries in /usr/local/bin:
  # kubeadm writes kubeadm-flags.env at init and join; /etc/default/kubelet carries --node-ip.
  write_file "$ROOT/etc/systemd/system/kubelet.service" <<'UNIT'
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT
  [ "$CHANGED" = 0 ] || restart=1
  write_file "$ROOT/etc/systemd/system/kubelet.service.d/10-kubeadm.conf" <<'UNIT'
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
UNIT
  [ "$CHANGED" = 0 ] || restart=1
  KUBELET_RESTART=$restart
  file=$(fetch crictl)
  tar -C "$ROOT/usr/local/bin" -xzf "$file" crictl
  file=$(fetch cni-plugins)
  mkdir -p "$ROOT/opt/cni/bin"
  tar -C "$ROOT/opt/cni/bin" -xzf "$file"
}

containerd_runtime() {
  local pause restart=0 file restrict=false
  file=$(fetch containerd)
  if ! tar -xzOf "$file" bin/containerd | cmp -s - "$ROOT/usr/local/bin/containerd"; then
    log "installing $(basename "$file" .tar.gz)"
    tar -C "$ROOT/usr/local" -xzf "$file"
    restart=1
  fi
  file=$(fetch runc)
  if ! cmp -s "$file" "$ROOT/usr/local/sbin/runc"; then
    log "installing runc"
    install -m 0755 "$file" "$ROOT/usr/local/sbin/runc"
    restart=1
  fi
  write_file "$ROOT/etc/systemd/system/containerd.service" <<'UNIT'
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
  pause=$(images_named /pause: | tail -n 1)
  [ -n "$pause" ] || die "NODE_IMAGES names no pause image"
  # Without CAP_SYS_RESOURCE (a container node on some hosts) a negative oom_score_adj cannot be
  # set: containerd then clamps pods' scores to its own instead of failing every sandbox.
  [ -n "$SYS_RESOURCE" ] || restrict=true
  write_file "$ROOT/etc/containerd/config.toml" <<CONF
version = 3

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '$pause'

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = $restrict

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
CONF
  [ "$CHANGED" = 0 ] || restart=1
  write_file "$ROOT/etc/crictl.yaml" <<CONF
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

# What the kubelet's configuration must say on this kind of node, as a kubeadm patch that
# `kubeadm init` and `kubeadm join` apply (--patches). Empty on a VM with cgroup v2.
kubelet_patches() {
  local lines=()
  [ -z "$CGROUP_V1" ] || lines+=("failCgroupV1: false")
  if in_container; then
    # The host's swap, and the host's disk: the kubelet must neither refuse the one nor evict
    # pods to free the other (kind does the same).
    lines+=("failSwapOn: false" "imageGCHighThresholdPercent: 100" "evictionHard:"
      '  nodefs.available: "0%"' '  nodefs.inodesFree: "0%"' '  imagefs.available: "0%"')
  fi
  [ -n "$SYS_RESOURCE" ] || lines+=("oomScoreAdj: 0")
  mkdir -p "$PATCHES"
  if [ ${#lines[@]} -eq 0 ]; then
    rm -f "$PATCHES/kubeletconfiguration+merge.yaml"
    return 0
  fi
  {
    echo "apiVersion: kubelet.config.k8s.io/v1beta1"
    echo "kind: KubeletConfiguration"
    printf '%s\n' "${lines[@]}"
  } | write_file "$PATCHES/kubeletconfiguration+merge.yaml"
}

kubelet_node_ip() {
  # Without it the kubelet reports the NAT NIC's 10.0.2.15, the same on every VirtualBox VM.
  write_file "$ROOT/etc/default/kubelet" <<<"KUBELET_EXTRA_ARGS=--node-ip=$NODE_IP"
  if [ "$CHANGED" = 1 ] || [ "${KUBELET_RESTART:-0}" = 1 ]; then
    systemctl daemon-reload
    if systemctl is-active --quiet kubelet; then
      systemctl restart kubelet
    fi
  fi
  systemctl enable kubelet >/dev/null 2>&1
}

# -- images --------------------------------------------------------------------------------

# images_named PATTERN: the image names of NODE_IMAGES containing PATTERN.
images_named() { awk -v p="$1" 'index($1, p) { print $1 }' <<<"$NODE_IMAGES"; }

image_present() { [ -n "$(ctr -n k8s.io images ls -q "name==$1" 2>/dev/null)" ]; }

# With a bundle every image this node needs is imported before kubeadm runs: nothing is pulled.
import_images() {
  local name archive count=0
  while read -r name archive; do
    [ -n "$name" ] || continue
    image_present "$name" && continue
    [ -f "$BUNDLE/$archive" ] || die "the bundle on this node has no $archive (image $name); fill it with ./lab bundle fill"
    ctr -n k8s.io images import --local "$BUNDLE/$archive" >/dev/null ||
      die "could not import $archive into containerd"
    image_present "$name" || die "$archive did not give the image $name"
    count=$((count + 1))
  done <<<"$NODE_IMAGES"
  log "images: $count imported from the bundle, $(($(grep -c . <<<"$NODE_IMAGES") - count)) already there"
}

pull_images() {
  local image pids=() pid
  log "pre-pulling $(grep -c . <<<"$NODE_IMAGES") images"
  while read -r image _; do
    [ -n "$image" ] || continue
    crictl pull "$image" >/dev/null &
    pids+=("$!")
  done <<<"$NODE_IMAGES"
  # Best effort: the kubelet pulls whatever is missing later; a slow registry must not fail here.
  for pid in "${pids[@]}"; do
    wait "$pid" || log "warning: an image pull failed; the kubelet will retry it"
  done
}

cni_manifest() {
  local file
  file=$(fetch cni-manifest)
  mkdir -p "$STATE/cni"
  cp "$file" "$STATE/cni/$(basename "$file")"
}

main() {
  local interface
  mkdir -p "$STATE" "$CACHE"
  node_facts
  interface=$(host_only_interface)
  log "host-only interface: $interface ($NODE_IP)"
  disable_swap
  kernel_settings
  kubernetes_binaries
  containerd_runtime
  kubelet_patches
  kubelet_node_ip
  if [ "$NODE_ROLE" = control-plane ]; then
    cni_manifest
  fi
  if [ -n "$BUNDLE" ]; then
    import_images
  else
    pull_images
  fi
  log "prepared"
  echo "$interface" >&3
}

if [ "${K8S_LAB_SOURCE_ONLY:-}" != 1 ]; then
  main
fi
