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
#   KUBERNETES_VERSION         default 1.35.4 (staging modules at 0.35.4)
#   ETCD_VERSION               default 3.6.16
#   KWOK_VERSION               default 0.8.0
#   METALLB_VERSIONS           space-separated, default "0.14.9 0.16.1" (the versions the
#                              lab's reference manifests pin)
#   GOPROXY                    default https://proxy.golang.org (no "direct" fallback)
set -euo pipefail

readonly RECIPE_REV=1 # bump when the build recipe changes

KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.35.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
METALLB_VERSIONS=${METALLB_VERSIONS:-0.14.9 0.16.1}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

mode=print-env
force=0
quiet=0

usage() {
	sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

while (($#)); do
	case "$1" in
	--print-env) mode=print-env ;;
	--print-path) mode=print-path ;;
	--check) mode=check ;;
	--force) force=1 ;;
	-q | --quiet) quiet=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "build-control-plane: unknown option: $1 (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

log() { ((quiet)) || printf '[control-plane] %s\n' "$*" >&2; }
die() {
	printf '[control-plane] error: %s\n' "$*" >&2
	exit 1
}

semver_ok() { [[ "$1" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; }
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
K8S_MINOR=${KUBERNETES_VERSION#*.}
K8S_MINOR=${K8S_MINOR%%.*}
K8S_PATCH=${KUBERNETES_VERSION##*.}
STAGING_VERSION="0.$K8S_MINOR.$K8S_PATCH"

knobs="k8s=$KUBERNETES_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION metallb=${METALLB[*]} recipe=$RECIPE_REV"
knob_hash=$(printf '%s' "$knobs" | cksum | cut -d' ' -f1)
KEY="k8s$KUBERNETES_VERSION-etcd$ETCD_VERSION-kwok$KWOK_VERSION-$knob_hash"

ROOT=${K8S_LAB_CONTROL_PLANE_DIR:-$HOME/.cache/k8s-lab/control-plane}
mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd)
case "$ROOT/" in
"$REPO_ROOT"/*) die "K8S_LAB_CONTROL_PLANE_DIR must be outside the repository ($REPO_ROOT)" ;;
esac
DIR="$ROOT/$KEY"
BIN="$DIR/bin"
SRC="$DIR/src"
LOGS="$DIR/logs"
STAGES="$BIN/stages"

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
outputs() {
	printf '%s\n' "$BIN/etcd" "$BIN/kwok" "$STAGES/pod-fast.yaml"
	local b v
	for b in "${K8S_BINS[@]}"; do printf '%s\n' "$BIN/$b"; done
	for v in "${METALLB[@]}"; do printf '%s\n' "$BIN/metallb-controller-v$v"; done
}

all_built() {
	local f
	while read -r f; do [[ -e "$f" ]] || return 1; done < <(outputs)
}

if [[ "$mode" == check ]]; then
	all_built || exit 1
	printf '%s\n' "$BIN"
	exit 0
fi

for tool in go python3; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required on PATH"
done

mkdir -p "$BIN" "$SRC" "$LOGS" "$STAGES"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$DIR/.lock"
	flock 9
fi
if ((force)); then
	log "--force: removing cached binaries in $BIN"
	while read -r f; do rm -f "$f"; done < <(outputs)
fi

export GOPROXY=${GOPROXY:-https://proxy.golang.org}
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
LDFLAGS_BASE="-s -w"

log "cache dir: $DIR"
log "versions: $knobs"

# mod_json MODULE@VERSION FIELD: download a module through the proxy, print one field of
# `go mod download -json`.
mod_json() {
	local out
	if ! out=$(cd "$SRC" && go mod download -json "$1" 2>&1); then
		printf '%s\n' "$out" >&2
		return 1
	fi
	printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
if d.get("Error"):
    sys.stderr.write(d["Error"] + "\n"); sys.exit(1)
print(d[sys.argv[1]])' "$2"
}

# module_replaces GOMOD_FILE [STAGING_VERSION]: `go mod edit -replace` arguments for the
# replacements of GOMOD_FILE. Replacements by another module are copied; local ones
# (./staging/src/k8s.io/X) become k8s.io/X@STAGING_VERSION when a version is given, and
# are dropped otherwise.
module_replaces() {
	go mod edit -json "$1" | python3 -c '
import json, sys
staging = sys.argv[1] if len(sys.argv) > 1 else ""
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    if new.get("Version"):
        print("-replace=%s=%s@%s" % (lhs, new["Path"], new["Version"]))
    elif staging and old["Path"].startswith("k8s.io/"):
        print("-replace=%s=%s@v%s" % (old["Path"], old["Path"], staging))' "${2:-}"
}

new_module() { # new_module DIR MODULE_PATH
	rm -rf "$1"
	mkdir -p "$1"
	printf 'module %s\n\ngo 1.25\n' "$2" >"$1/go.mod"
}

declare -a SUMMARY=()
TOTAL_START=$SECONDS

step() { # step NAME OUTPUT FUNCTION [ARGS...]
	local name=$1 output=$2 fn=$3 start=$SECONDS logfile="$LOGS/$1.log"
	shift 3
	if [[ -e "$output" ]]; then
		SUMMARY+=("$(printf '%-28s %6ss  cached' "$name" 0)")
		log "$name: cached"
		return 0
	fi
	log "$name: building (log: $logfile)"
	if ! "$fn" "$@" >"$logfile" 2>&1; then
		tail -n 40 "$logfile" >&2
		die "$name: build failed after $((SECONDS - start))s; full log: $logfile"
	fi
	[[ -e "$output" ]] || die "$name: build produced no $output"
	SUMMARY+=("$(printf '%-28s %6ss  built' "$name" $((SECONDS - start)))")
	printf '%s\t%s\n' "$name" $((SECONDS - start)) >>"$LOGS/build-seconds.tsv"
}

# --- etcd -------------------------------------------------------------------------------

build_etcd() {
	local dir="$SRC/etcd"
	new_module "$dir" k8slab.local/controlplane/etcd
	cat >"$dir/main.go" <<'EOF'
// etcd, as the etcd release binary runs it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
	(
		cd "$dir"
		go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
		go mod tidy
		go build -ldflags "$LDFLAGS_BASE" -o "$BIN/etcd.tmp" .
	)
	mv -f "$BIN/etcd.tmp" "$BIN/etcd"
}

# --- Kubernetes -------------------------------------------------------------------------

build_kubernetes() {
	local dir="$SRC/kubernetes" mod=k8s.io/kubernetes gomod pkgs=() b
	new_module "$dir" k8slab.local/controlplane/kubernetes
	gomod=$(mod_json "$mod@v$KUBERNETES_VERSION" GoMod)
	local -a replaces=()
	mapfile -t replaces < <(module_replaces "$gomod" "$STAGING_VERSION")
	for b in "${K8S_BINS[@]}"; do pkgs+=("$mod/cmd/$b"); done
	printf '//go:build tools\n\npackage tools\n\nimport (\n' >"$dir/tools.go"
	for b in "${pkgs[@]}"; do printf '\t_ "%s"\n' "$b" >>"$dir/tools.go"; done
	printf ')\n' >>"$dir/tools.go"
	# Without the version stamp clients cannot parse the server's version, and the
	# API server's compatibility version falls back to a default.
	local v=k8s.io/component-base/version cv=k8s.io/client-go/pkg/version ld="$LDFLAGS_BASE"
	local f
	for f in "$v" "$cv"; do
		ld+=" -X $f.gitVersion=v$KUBERNETES_VERSION -X $f.gitMajor=1 -X $f.gitMinor=$K8S_MINOR"
		ld+=" -X $f.gitTreeState=clean -X $f.gitCommit=0000000000000000000000000000000000000000"
		ld+=" -X $f.buildDate=1970-01-01T00:00:00Z"
	done
	(
		cd "$dir"
		go mod edit "${replaces[@]}"
		go get -tags tools "$mod@v$KUBERNETES_VERSION"
		go mod tidy -e
		go build -ldflags "$ld" -o "$BIN/k8s.tmp/" "${pkgs[@]}"
	)
	for b in "${K8S_BINS[@]}"; do mv -f "$BIN/k8s.tmp/$b" "$BIN/$b"; done
	rmdir "$BIN/k8s.tmp"
}

# --- kwok -------------------------------------------------------------------------------

build_kwok() {
	local dir="$SRC/kwok" mod=sigs.k8s.io/kwok moddir gomod
	new_module "$dir" k8slab.local/controlplane/kwok
	moddir=$(mod_json "$mod@v$KWOK_VERSION" Dir)
	gomod=$(mod_json "$mod@v$KWOK_VERSION" GoMod)
	local -a replaces=()
	mapfile -t replaces < <(module_replaces "$gomod")
	printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/kwok"\n' "$mod" >"$dir/tools.go"
	(
		cd "$dir"
		((${#replaces[@]} == 0)) || go mod edit "${replaces[@]}"
		go get -tags tools "$mod@v$KWOK_VERSION"
		go mod tidy -e
		go build -ldflags "$LDFLAGS_BASE -X $mod/pkg/consts.Version=v$KWOK_VERSION" -o "$BIN/kwok.tmp" "$mod/cmd/kwok"
	)
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
	local version=$1 dir="$SRC/metallb-$1" mod=go.universe.tf/metallb gomod
	new_module "$dir" k8slab.local/controlplane/metallb
	gomod=$(mod_json "$mod@v$version" GoMod)
	local -a replaces=()
	mapfile -t replaces < <(module_replaces "$gomod")
	printf '//go:build tools\n\npackage tools\n\nimport _ "%s/controller"\n' "$mod" >"$dir/tools.go"
	(
		cd "$dir"
		((${#replaces[@]} == 0)) || go mod edit "${replaces[@]}"
		go get -tags tools "$mod@v$version"
		go mod tidy -e
		go build -ldflags "$LDFLAGS_BASE -X $mod/internal/version.version=$version" \
			-o "$BIN/metallb-controller-v$version.tmp" "$mod/controller"
	)
	mv -f "$BIN/metallb-controller-v$version.tmp" "$BIN/metallb-controller-v$version"
}

step etcd "$BIN/etcd" build_etcd
step kubernetes "$BIN/kubectl" build_kubernetes
step kwok "$BIN/kwok" build_kwok
for v in "${METALLB[@]}"; do
	step "metallb-controller-v$v" "$BIN/metallb-controller-v$v" build_metallb "$v"
done

all_built || die "some components are missing in $BIN after the build"

if ! ((quiet)) || ((SECONDS - TOTAL_START > 5)); then
	{
		echo "[control-plane] timings:"
		for line in "${SUMMARY[@]}"; do echo "[control-plane]   $line"; done
		printf '[control-plane]   %-28s %6ss\n' total $((SECONDS - TOTAL_START))
		echo "[control-plane] $(du -sh "$BIN" 2>/dev/null | awk '{print $1}') in $BIN"
	} >&2
fi

if [[ "$mode" == print-path ]]; then
	printf '%s\n' "$BIN"
else
	printf 'export K8S_LAB_CONTROL_PLANE_BIN="%s"\n' "$BIN"
fi
