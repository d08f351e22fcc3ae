#!/usr/bin/env bash
# Build a local Kubernetes control plane for k8s-lab's control-plane test tier, from Go
# modules (through the Go module proxy only), as plain binaries:
#
#   etcd                     go.etcd.io/etcd/server/v3 (a small main calling etcdmain.Main)
#   kube-apiserver           k8s.io/kubernetes, through a module that replaces every
#   kube-controller-manager    k8s.io/* staging module with the matching v0.x release
#   kube-scheduler             (`go install` of k8s.io/kubernetes fails on its own
#   kubectl                    replace directives); the version is stamped with ldflags
#   kwok                     sigs.k8s.io/kwok/cmd/kwok, plus the stage files its module ships
#                            (stages/: node fast, node heartbeat with lease, pod fast)
#   metallb-controller-vX    go.universe.tf/metallb/controller, once per MetalLB version
#
# Everything is cached outside the repository, in
#   ${K8S_LAB_CONTROL_PLANE_DIR:-$HOME/.cache/k8s-lab/control-plane}/<versions>/{bin,stages,src,logs}
# and a component whose binary exists is not rebuilt, so a warm run takes well under a second.
#
# Usage: tools/build-control-plane.sh [options]
#   (no option), --print-env  build what is missing, then print
#                             `export K8S_LAB_CONTROL_PLANE_BIN="<bin>"` on stdout
#   --print-path              same, but print only the bin directory
#   --check                   build nothing; exit 0 and print the bin directory if every
#                             component is cached, else exit 1
#   --force                   rebuild every component
#   -q, --quiet               no progress on stderr: only errors and, when something was
#                             built, the timing summary
#   -h, --help                this text
#
# Environment:
#   K8S_LAB_CONTROL_PLANE_DIR  cache root (default $HOME/.cache/k8s-lab/control-plane)
#   KUBERNETES_VERSION         default 1.36.1 (staging modules at 0.36.1), the lab's own, so
#                              tools/build-node-software.sh's compiled packages serve both
#   ETCD_VERSION               default 3.6.8 (what kubeadm 1.36 runs; shared likewise)
#   KWOK_VERSION               default 0.8.0
#   METALLB_VERSIONS           space-separated, default "0.14.9 0.16.1" (the versions the
#                              lab's reference manifests pin)
#   GOPROXY                    default https://proxy.golang.org (no "direct" fallback)
set -euo pipefail

readonly RECIPE_REV=1 # bump when the build recipe changes

KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.36.1}
ETCD_VERSION=${ETCD_VERSION:-3.6.8}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
METALLB_VERSIONS=${METALLB_VERSIONS:-0.14.9 0.16.1}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
LOG_TAG=control-plane
MODULE_GO=1.25
# shellcheck source-path=SCRIPTDIR source=go-build.sh
. "$SCRIPT_DIR/go-build.sh"

mode=print-env
force=0
quiet=0

for option in "$@"; do
	build_option "$option"
done

KUBERNETES_VERSION=${KUBERNETES_VERSION#v}
ETCD_VERSION=${ETCD_VERSION#v}
KWOK_VERSION=${KWOK_VERSION#v}
semver_ok "$KUBERNETES_VERSION" || die "KUBERNETES_VERSION must look like 1.35.4"
semver_ok "$ETCD_VERSION" || die "ETCD_VERSION must look like 3.6.16"
semver_ok "$KWOK_VERSION" || die "KWOK_VERSION must look like 0.8.0"
read -r -a METALLB <<<"$METALLB_VERSIONS"
((${#METALLB[@]})) || die "METALLB_VERSIONS is empty"
for i in "${!METALLB[@]}"; do
	METALLB[i]=${METALLB[i]#v}
	semver_ok "${METALLB[i]}" || die "METALLB_VERSIONS: '${METALLB[i]}' must look like 0.14.9"
done

knobs="k8s=$KUBERNETES_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION metallb=${METALLB[*]} recipe=$RECIPE_REV"
cache_dirs K8S_LAB_CONTROL_PLANE_DIR "$HOME/.cache/k8s-lab/control-plane" \
	"k8s$KUBERNETES_VERSION-etcd$ETCD_VERSION-kwok$KWOK_VERSION" "$knobs"
STAGES="$BIN/stages"

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
outputs() {
	printf '%s\n' "$BIN/etcd" "$BIN/kwok" "$STAGES/pod-fast.yaml"
	local b v
	for b in "${K8S_BINS[@]}"; do printf '%s\n' "$BIN/$b"; done
	for v in "${METALLB[@]}"; do printf '%s\n' "$BIN/metallb-controller-v$v"; done
}

if [[ "$mode" == check ]]; then
	outputs_built || exit 1
	printf '%s\n' "$BIN"
	exit 0
fi

for tool in go python3; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required on PATH"
done

mkdir -p "$BIN" "$SRC" "$LOGS" "$STAGES"
begin_builds

# --- etcd -------------------------------------------------------------------------------

# --- Kubernetes -------------------------------------------------------------------------

build_plane_kubernetes() {
	local pkgs=() b
	for b in "${K8S_BINS[@]}"; do pkgs+=("cmd/$b"); done
	build_kubernetes "$SRC/kubernetes" "$KUBERNETES_VERSION" "$BIN/k8s.tmp" "${pkgs[@]}"
	for b in "${K8S_BINS[@]}"; do mv -f "$BIN/k8s.tmp/$b" "$BIN/$b"; done
	rmdir "$BIN/k8s.tmp"
}

# --- kwok -------------------------------------------------------------------------------

build_kwok() {
	local dir="$SRC/kwok" mod=sigs.k8s.io/kwok moddir
	new_module "$dir" k8slab.local/controlplane/kwok
	moddir=$(mod_json "$mod@v$KWOK_VERSION" Dir)
	wrapper_build "$dir" "$mod" "$KWOK_VERSION" "" "$LDFLAGS_BASE -X $mod/pkg/consts.Version=v$KWOK_VERSION" \
		"$BIN/kwok.tmp" "$mod/cmd/kwok"
	# The stage files kwok ships (its `kwokctl` defaults): nodes Ready at once with a
	# lease heartbeat; pods scheduled to a kwok node go Running and Ready.
	local s="$moddir/kustomize/stage"
	cat "$s/node/fast/node-initialize.yaml" >"$STAGES/node-fast.yaml"
	cat "$s/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" >"$STAGES/node-heartbeat-with-lease.yaml"
	local first=1 y
	: >"$STAGES/pod-fast.yaml.tmp"
	for y in "$s"/pod/fast/*.yaml; do
		[[ "$(basename "$y")" == kustomization.yaml ]] && continue
		((first)) || printf -- '---\n' >>"$STAGES/pod-fast.yaml.tmp"
		first=0
		cat "$y" >>"$STAGES/pod-fast.yaml.tmp"
	done
	mv -f "$BIN/kwok.tmp" "$BIN/kwok"
	mv -f "$STAGES/pod-fast.yaml.tmp" "$STAGES/pod-fast.yaml"
}

# --- MetalLB's controller ---------------------------------------------------------------

build_metallb() { # build_metallb VERSION
	local version=$1 dir="$SRC/metallb-$1" mod=go.universe.tf/metallb
	new_module "$dir" k8slab.local/controlplane/metallb
	wrapper_build "$dir" "$mod" "$version" "" "$LDFLAGS_BASE -X $mod/internal/version.version=$version" \
		"$BIN/metallb-controller-v$version.tmp" "$mod/controller"
	mv -f "$BIN/metallb-controller-v$version.tmp" "$BIN/metallb-controller-v$version"
}

step etcd "$BIN/etcd" build_etcd "$SRC/etcd" "$ETCD_VERSION" "$BIN/etcd"
step kubernetes "$BIN/kubectl" build_plane_kubernetes
step kwok "$BIN/kwok" build_kwok
for v in "${METALLB[@]}"; do
	step "metallb-controller-v$v" "$BIN/metallb-controller-v$v" build_metallb "$v"
done

outputs_built || die "some components are missing in $BIN after the build"

report_timings "$(du -sh "$BIN" 2>/dev/null | awk '{print $1}') in $BIN"

if [[ "$mode" == print-path ]]; then
	printf '%s\n' "$BIN"
else
	printf 'export K8S_LAB_CONTROL_PLANE_BIN="%s"\n' "$BIN"
fi
