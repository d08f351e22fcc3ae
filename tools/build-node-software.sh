#!/usr/bin/env bash
# Build the software of real lab nodes from upstream sources, through the Go module proxy and
# Debian's packages only, as plain binaries (tools/nodes/sourcebundle.py turns them into an
# offline bundle: release-shaped archives and container images):
#
#   kubelet kubeadm kubectl kube-proxy    k8s.io/kubernetes, through a module that replaces every
#   kube-apiserver kube-controller-manager  k8s.io/* staging module with the matching v0.x
#   kube-scheduler agnhost                  release; the version stamped with ldflags (unstamped,
#                                           kubeadm reads v0.0.0-master and refuses it)
#   etcd                                  go.etcd.io/etcd/server/v3 (a main calling etcdmain.Main)
#   pause                                 build/pause/linux/pause.c of the kubernetes module, gcc -static
#   coredns                               github.com/coredns/coredns
#   containerd ctr containerd-shim-runc-v2  github.com/containerd/containerd/v2, through a module
#   runc                                  github.com/opencontainers/runc (cgo, seccomp, static)
#   crictl                                sigs.k8s.io/cri-tools
#   cni/*                                 github.com/containernetworking/plugins (the release's set)
#   flanneld                              github.com/flannel-io/flannel (cgo)
#   flannel (CNI plugin)                  github.com/containernetworking/plugins v0.9.1's
#                                         plugins/meta/flannel (flannel's own cni-plugin module is
#                                         not served; this is the code it was split from)
#   metallb-controller metallb-speaker    go.universe.tf/metallb
#   traefik                               github.com/traefik/traefik/v3, through a module with the
#                                         replaces its go.mod names (see build_traefik)
#   registry                              github.com/distribution/distribution/v3: not node software,
#                                         the loopback registry `./lab bundle fill` is tested against
#
# Every version comes from the environment, and tools/nodes/sourcebundle.py passes the lab's own
# pins (python3 -m components.bundle pins). Everything is cached outside the repository, in
#   ${K8S_LAB_NODE_SOFTWARE_DIR:-$HOME/.cache/k8s-lab/node-software}/<versions>/{bin,src,logs}
# and a component whose binary exists is not rebuilt.
#
# Usage: tools/build-node-software.sh [options]
#   (no option), --print-path  build what is missing, then print the bin directory on stdout
#   --print-env               same, but print `export K8S_LAB_NODE_SOFTWARE_BIN="<bin>"`
#   --check                   build nothing; exit 0 and print the bin directory if every
#                             component is cached, else exit 1
#   --force                   rebuild every component
#   -q, --quiet               no progress on stderr: only errors and, when something was
#                             built, the timing summary
#   -h, --help                this text
#
# Environment (the versions; each MAJOR.MINOR.PATCH):
#   KUBERNETES_VERSION ETCD_VERSION PAUSE_VERSION COREDNS_VERSION CONTAINERD_VERSION RUNC_VERSION
#   CRICTL_VERSION CNI_PLUGINS_VERSION FLANNEL_VERSION METALLB_VERSION TRAEFIK_VERSION
#   K8S_LAB_NODE_SOFTWARE_DIR  cache root (default $HOME/.cache/k8s-lab/node-software)
#   GOPROXY                    default https://proxy.golang.org (no "direct" fallback)
# Needs go, gcc with static libc, pkg-config and libseccomp-dev (runc's seccomp support).
set -euo pipefail

readonly RECIPE_REV=1 # bump when the build recipe changes

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
LOG_TAG=node-software
MODULE_GO=1.25
# shellcheck source-path=SCRIPTDIR source=go-build.sh
. "$SCRIPT_DIR/go-build.sh"

mode=print-path
force=0
quiet=0
for option in "$@"; do
	build_option "$option"
done

VERSIONS=(KUBERNETES ETCD PAUSE COREDNS CONTAINERD RUNC CRICTL CNI_PLUGINS FLANNEL METALLB TRAEFIK)
readonly REGISTRY_VERSION=3.0.0
knobs="recipe=$RECIPE_REV"
for name in "${VERSIONS[@]}"; do
	var="${name}_VERSION"
	value=${!var:-}
	value=${value#v}
	[[ -n "$value" ]] || die "$var is not set (tools/nodes/sourcebundle.py sets every version from the lab's pins)"
	[[ "$value" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || die "$var must look like 1.2.3, not '$value'"
	printf -v "$var" '%s' "$value"
	knobs+=" ${name,,}=$value"
done
# The flannel CNI plugin's code before it became a module of its own.
readonly FLANNEL_CNI_SOURCE_VERSION=0.9.1

cache_dirs K8S_LAB_NODE_SOFTWARE_DIR "$HOME/.cache/k8s-lab/node-software" "k8s$KUBERNETES_VERSION" "$knobs"

K8S_BINS=(kubelet kubeadm kubectl kube-proxy kube-apiserver kube-controller-manager kube-scheduler)
CONTAINERD_BINS=(containerd ctr containerd-shim-runc-v2)
# The plugins of a containernetworking/plugins release archive.
CNI_PLUGINS=(main/bridge main/dummy main/host-device main/ipvlan main/loopback main/macvlan main/ptp
	main/tap main/vlan ipam/dhcp ipam/host-local ipam/static meta/bandwidth meta/firewall
	meta/portmap meta/sbr meta/tuning meta/vrf)

outputs() {
	local b
	for b in "${K8S_BINS[@]}" agnhost etcd pause coredns "${CONTAINERD_BINS[@]}" runc crictl flanneld \
		metallb-controller metallb-speaker traefik registry; do
		printf '%s\n' "$BIN/$b"
	done
	for b in "${CNI_PLUGINS[@]}" meta/flannel; do printf '%s\n' "$BIN/cni/${b#*/}"; done
}

if [[ "$mode" == check ]]; then
	outputs_built || exit 1
	printf '%s\n' "$BIN"
	exit 0
fi

for tool in go gcc pkg-config python3; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required on PATH"
done
pkg-config --exists libseccomp || die "runc's seccomp support needs libseccomp-dev (apt-get install libseccomp-dev)"

mkdir -p "$BIN/cni" "$SRC" "$LOGS"
begin_builds

# --- Kubernetes (and agnhost, the e2e image that serves its pod's name) -------------------

build_node_kubernetes() {
	local pkgs=() b
	for b in "${K8S_BINS[@]}"; do pkgs+=("cmd/$b"); done
	build_kubernetes "$SRC/kubernetes" "$KUBERNETES_VERSION" "$BIN/k8s.tmp" "${pkgs[@]}" test/images/agnhost
	for b in "${K8S_BINS[@]}" agnhost; do mv -f "$BIN/k8s.tmp/$b" "$BIN/$b"; done
	rmdir "$BIN/k8s.tmp"
}

build_pause() {
	local moddir
	moddir=$(mod_json "k8s.io/kubernetes@v$KUBERNETES_VERSION" Dir)
	CGO_ENABLED=1 gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-k8s-lab" \
		-o "$BIN/pause.tmp" "$moddir/build/pause/linux/pause.c"
	strip "$BIN/pause.tmp"
	mv -f "$BIN/pause.tmp" "$BIN/pause"
}

# --- CoreDNS ---------------------------------------------------------------------

build_coredns() {
	local dir="$SRC/coredns" mod=github.com/coredns/coredns
	new_module "$dir" k8slab.local/node/coredns
	wrapper_build "$dir" "$mod" "$COREDNS_VERSION" "" \
		"$LDFLAGS_BASE -X $mod/coremain.GitCommit=v$COREDNS_VERSION" "$BIN/coredns.tmp" "$mod"
	mv -f "$BIN/coredns.tmp" "$BIN/coredns"
}

# --- containerd, runc, crictl, CNI plugins ----------------------------------------------

build_containerd() {
	local dir="$SRC/containerd" mod=github.com/containerd/containerd/v2 pkgs=() b
	new_module "$dir" k8slab.local/node/containerd
	for b in "${CONTAINERD_BINS[@]}"; do pkgs+=("$mod/cmd/$b"); done
	# Stamped as a release is, so `containerd --version` names the version node preparation pins.
	wrapper_build "$dir" "$mod" "$CONTAINERD_VERSION" "" \
		"$LDFLAGS_BASE -X $mod/version.Version=v$CONTAINERD_VERSION -X $mod/version.Package=github.com/containerd/containerd/v2" \
		"$BIN/containerd.tmp/" "${pkgs[@]}"
	for b in "${CONTAINERD_BINS[@]}"; do mv -f "$BIN/containerd.tmp/$b" "$BIN/$b"; done
	rmdir "$BIN/containerd.tmp"
}

build_runc() {
	local dir="$SRC/runc" mod=github.com/opencontainers/runc
	new_module "$dir" k8slab.local/node/runc
	# Static, with seccomp, as runc's release binaries are.
	CGO_ENABLED=1 WRAPPER_FLAGS="-tags=seccomp,netgo,osusergo" wrapper_build "$dir" "$mod" "$RUNC_VERSION" "" \
		"$LDFLAGS_BASE -X main.version=$RUNC_VERSION -extldflags=-static" "$BIN/runc.tmp" "$mod"
	mv -f "$BIN/runc.tmp" "$BIN/runc"
}

build_crictl() {
	local dir="$SRC/crictl" mod=sigs.k8s.io/cri-tools
	new_module "$dir" k8slab.local/node/crictl
	wrapper_build "$dir" "$mod" "$CRICTL_VERSION" "" \
		"$LDFLAGS_BASE -X $mod/pkg/version.Version=v$CRICTL_VERSION" "$BIN/crictl.tmp" "$mod/cmd/crictl"
	mv -f "$BIN/crictl.tmp" "$BIN/crictl"
}

build_cni_plugins() {
	local dir="$SRC/cni-plugins" mod=github.com/containernetworking/plugins pkgs=() p
	new_module "$dir" k8slab.local/node/cni
	for p in "${CNI_PLUGINS[@]}"; do pkgs+=("$mod/plugins/$p"); done
	wrapper_build "$dir" "$mod" "$CNI_PLUGINS_VERSION" "" \
		"$LDFLAGS_BASE -X $mod/pkg/utils/buildversion.BuildVersion=v$CNI_PLUGINS_VERSION" "$BIN/cni.tmp/" "${pkgs[@]}"
	for p in "${CNI_PLUGINS[@]}"; do mv -f "$BIN/cni.tmp/${p#*/}" "$BIN/cni/${p#*/}"; done
	rmdir "$BIN/cni.tmp"
}

# --- flannel ----------------------------------------------------------------------------

build_flanneld() {
	local dir="$SRC/flannel" mod=github.com/flannel-io/flannel
	new_module "$dir" k8slab.local/node/flannel
	# cgo: its UDP backend's proxy is C.
	CGO_ENABLED=1 wrapper_build "$dir" "$mod" "$FLANNEL_VERSION" "" \
		"$LDFLAGS_BASE -X $mod/pkg/version.Version=v$FLANNEL_VERSION -extldflags=-static" "$BIN/flanneld.tmp" "$mod"
	mv -f "$BIN/flanneld.tmp" "$BIN/flanneld"
}

build_flannel_cni() {
	local dir="$SRC/flannel-cni" mod=github.com/containernetworking/plugins
	new_module "$dir" k8slab.local/node/flannelcni
	wrapper_build "$dir" "$mod" "$FLANNEL_CNI_SOURCE_VERSION" "" "$LDFLAGS_BASE" \
		"$BIN/cni/flannel.tmp" "$mod/plugins/meta/flannel"
	mv -f "$BIN/cni/flannel.tmp" "$BIN/cni/flannel"
}

# --- MetalLB ----------------------------------------------------------------------------

build_metallb() {
	local dir="$SRC/metallb" mod=go.universe.tf/metallb
	new_module "$dir" k8slab.local/node/metallb
	wrapper_build "$dir" "$mod" "$METALLB_VERSION" "" "$LDFLAGS_BASE -X $mod/internal/version.version=$METALLB_VERSION" \
		"$BIN/metallb.tmp/" "$mod/controller" "$mod/speaker"
	mv -f "$BIN/metallb.tmp/controller" "$BIN/metallb-controller"
	mv -f "$BIN/metallb.tmp/speaker" "$BIN/metallb-speaker"
	rmdir "$BIN/metallb.tmp"
}

# --- Traefik ----------------------------------------------------------------------------

# Traefik's go.mod replaces three modules the proxy cannot give as named:
# - github.com/traefik/traefik/dynamic/ext is a directory of its repository that the module zip
#   leaves out; its two types are empty extension points of the dynamic configuration, so an
#   empty local module stands in (the build then has what a build of the repository has);
# - its github.com/abbot/go-http-auth fork (containous/go-http-auth) at the pinned pseudo-version
#   is refused; the fork's 2020 pseudo-version, the same API, is served;
# - github.com/gorilla/mux => containous/mux, as upstream.
build_traefik() {
	local dir="$SRC/traefik" mod=github.com/traefik/traefik/v3
	new_module "$dir" k8slab.local/node/traefik
	mkdir -p "$dir/ext"
	printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo %s\n' "$MODULE_GO" >"$dir/ext/go.mod"
	cat >"$dir/ext/ext.go" <<'EOF'
// Package ext holds the extension points of Traefik's dynamic configuration; a build of the
// upstream repository gets them empty, as here.
package ext

// HTTP is inlined into the HTTP configuration.
type HTTP struct{}

// Router is inlined into an HTTP router.
type Router struct{}
EOF
	WRAPPER_EDITS=(
		-replace=github.com/traefik/traefik/dynamic/ext=./ext
		-replace=github.com/abbot/go-http-auth=github.com/containous/go-http-auth@v0.4.1-0.20200324110947-a37a7636d23e
		-replace=github.com/gorilla/mux=github.com/containous/mux@v0.0.0-20250523120546-41b6ec3aed59
	)
	wrapper_build "$dir" "$mod" "$TRAEFIK_VERSION" "" \
		"$LDFLAGS_BASE -X $mod/pkg/version.Version=$TRAEFIK_VERSION -X $mod/pkg/version.Codename=k8s-lab" \
		"$BIN/traefik.tmp" "$mod/cmd/traefik"
	WRAPPER_EDITS=()
	mv -f "$BIN/traefik.tmp" "$BIN/traefik"
}

# --- the registry of the bundle fill's tests ----------------------------------------------

build_registry() {
	local dir="$SRC/registry" mod=github.com/distribution/distribution/v3
	new_module "$dir" k8slab.local/node/registry
	wrapper_build "$dir" "$mod" "$REGISTRY_VERSION" "" "$LDFLAGS_BASE" "$BIN/registry.tmp" "$mod/cmd/registry"
	mv -f "$BIN/registry.tmp" "$BIN/registry"
}

step kubernetes "$BIN/kubeadm" build_node_kubernetes
step pause "$BIN/pause" build_pause
step etcd "$BIN/etcd" build_etcd "$SRC/etcd" "$ETCD_VERSION" "$BIN/etcd"
step coredns "$BIN/coredns" build_coredns
step containerd "$BIN/containerd" build_containerd
step runc "$BIN/runc" build_runc
step crictl "$BIN/crictl" build_crictl
step cni-plugins "$BIN/cni/bridge" build_cni_plugins
step flanneld "$BIN/flanneld" build_flanneld
step flannel-cni-plugin "$BIN/cni/flannel" build_flannel_cni
step metallb "$BIN/metallb-speaker" build_metallb
step traefik "$BIN/traefik" build_traefik
step registry "$BIN/registry" build_registry

outputs_built || die "some components are missing in $BIN after the build"

report_timings "$(du -sh "$BIN" 2>/dev/null | awk '{print $1}') in $BIN"

if [[ "$mode" == print-env ]]; then
	printf 'export K8S_LAB_NODE_SOFTWARE_BIN="%s"\n' "$BIN"
else
	printf '%s\n' "$BIN"
fi
