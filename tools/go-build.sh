# shellcheck shell=bash
# What tools/build-pulumi-toolchain.sh, tools/build-control-plane.sh and tools/build-node-software.sh
# share, sourced by each: options, messages, the cache folders, the Go environment, modules read
# through the proxy, throwaway modules, the builds of the same upstream programs (Kubernetes, etcd)
# and timed build steps. Defining things is all sourcing it does.
#
# The sourcing script sets, before it calls anything here:
#   LOG_TAG           the tag of its messages ("[LOG_TAG] ...")
#   mode, force, quiet  its defaults, before build_option takes the options (quiet=1: no
#                     progress messages)
#   REPO_ROOT         the repository (a cache root must be outside it)
#   MODULE_GO         the `go` line of its throwaway modules (it sets the built binaries'
#                     default GODEBUG, so each script keeps its own)
#   knobs             its versions, in one line (they name the cache folder)
#   outputs           a function printing the path of every file it builds
# and calls cache_dirs, which sets DIR, BIN, SRC (where modules are downloaded from) and LOGS
# (the step logs), then begin_builds, which sets SUMMARY (the timing lines) and TOTAL_START.

# shellcheck disable=SC2154 # quiet and LOG_TAG come from the sourcing script
log() { ((quiet)) || printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
warn() { printf '[%s] warning: %s\n' "$LOG_TAG" "$*" >&2; }
die() {
	printf '[%s] error: %s\n' "$LOG_TAG" "$*" >&2
	exit 1
}

# build_option OPTION: take one of the options both scripts share (--print-env, --print-path,
# --check, --force, -q/--quiet, -h/--help) into mode, force and quiet; any other is an error.
build_option() {
	# shellcheck disable=SC2034 # the sourcing script reads them
	case "$1" in
	--print-env) mode=print-env ;;
	--print-path) mode=print-path ;;
	--check) mode=check ;;
	--force) force=1 ;;
	-q | --quiet) quiet=1 ;;
	-h | --help)
		# The script's usage: its opening comment.
		sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "$(basename "$0" .sh): unknown option: $1 (try --help)" >&2
		exit 2
		;;
	esac
}

semver_ok() { [[ "$1" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; }

# cache_dirs VARIABLE DEFAULT NAME KNOBS: set DIR to NAME-<checksum of KNOBS> in the cache root
# that the environment variable VARIABLE names (DEFAULT when unset), and BIN, SRC and LOGS to
# its folders. The root is created, and must lie outside the repository.
cache_dirs() {
	local root=${!1:-$2} knob_hash
	mkdir -p "$root"
	root=$(cd "$root" && pwd)
	case "$root/" in
	"$REPO_ROOT"/*) die "$1 must be outside the repository ($REPO_ROOT)" ;;
	esac
	knob_hash=$(printf '%s' "$4" | cksum | cut -d' ' -f1)
	DIR="$root/$3-$knob_hash"
	# shellcheck disable=SC2034 # the sourcing script's builds use it
	BIN="$DIR/bin"
	SRC="$DIR/src"
	LOGS="$DIR/logs"
}

# lock_builds DIR: one build at a time per cache directory (parallel CI jobs, two shells...).
lock_builds() {
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$1/.lock"
		flock 9
	fi
}

# outputs_built: every path the sourcing script's `outputs` function prints exists.
outputs_built() {
	local f
	while read -r f; do [[ -e "$f" ]] || return 1; done < <(outputs)
}

# begin_builds: one build at a time in $DIR; with --force, every output (the sourcing script's
# `outputs`) removed first; Go's environment; the clock report_timings reads.
begin_builds() {
	lock_builds "$DIR"
	if ((force)); then
		log "--force: removing cached binaries in $DIR"
		local f
		while read -r f; do rm -f "$f"; done < <(outputs)
	fi
	go_environment
	log "cache dir: $DIR"
	log "versions: $knobs"
	log "go: $(go env GOVERSION), GOPROXY=$GOPROXY, GOMODCACHE=$(go env GOMODCACHE), GOCACHE=$(go env GOCACHE)"
	SUMMARY=()
	TOTAL_START=$SECONDS
}

# go_environment: reproducible static builds from the module proxy only.
go_environment() {
	export GOPROXY=${GOPROXY:-https://proxy.golang.org}
	export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
	export GOTOOLCHAIN=local
	export CGO_ENABLED=0
	# shellcheck disable=SC2034 # the sourcing script's builds use it
	LDFLAGS_BASE="-s -w"
}

# mod_json MODULE@VERSION FIELD: download a module through the proxy and print one
# field (Dir, GoMod, ...) of `go mod download -json`.
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

# new_module DIR MODULE_PATH: an empty throwaway module.
new_module() {
	rm -rf "$1"
	mkdir -p "$1"
	printf 'module %s\n\ngo %s\n' "$2" "$MODULE_GO" >"$1/go.mod"
}

# step NAME OUTPUT FUNCTION [ARGS...]: run FUNCTION ARGS unless OUTPUT exists; time it.
step() {
	local name=$1 output=$2 fn=$3 start=$SECONDS logfile="$LOGS/$1.log"
	shift 3
	if [[ -e "$output" ]]; then
		SUMMARY+=("$(printf '%-28s %6ss  cached' "$name" 0)")
		log "$name: cached ($output)"
		return 0
	fi
	log "$name: building (log: $logfile)"
	if ! "$fn" "$@" >"$logfile" 2>&1; then
		tail -n 40 "$logfile" >&2
		die "$name: build failed after $((SECONDS - start))s; full log: $logfile"
	fi
	[[ -e "$output" ]] || die "$name: build produced no $output"
	SUMMARY+=("$(printf '%-28s %6ss  built' "$name" $((SECONDS - start)))")
	# Kept beside the binaries so `bench/run.py` can report what building them cost.
	printf '%s\t%s\n' "$name" $((SECONDS - start)) >>"$LOGS/build-seconds.tsv"
	log "$name: built in $((SECONDS - start))s"
}

# report_timings SIZES: the timing of every step, the total, then the line SIZES, on stderr;
# a quiet run reports only a build that took more than 5 seconds.
report_timings() {
	if ((quiet)) && ((SECONDS - TOTAL_START <= 5)); then
		return 0
	fi
	local line
	{
		echo "[$LOG_TAG] timings:"
		for line in "${SUMMARY[@]}"; do
			echo "[$LOG_TAG]   $line"
		done
		printf '[%s]   %-28s %6ss\n' "$LOG_TAG" total $((SECONDS - TOTAL_START))
		echo "[$LOG_TAG] $1"
	} >&2
}

# wrapper_build DIR MODULE VERSION STAGING LDFLAGS OUTPUT PACKAGE...: build the PACKAGEs of
# MODULE@vVERSION in the throwaway module DIR, which requires them through a tools.go and copies
# MODULE's replaces (its local k8s.io ones as STAGING releases when STAGING is set). OUTPUT is
# the binary, or a directory ending in / for several packages. Extra `go mod edit` arguments can
# be given in the array WRAPPER_EDITS, extra build flags in WRAPPER_FLAGS.
wrapper_build() {
	local dir=$1 mod=$2 version=$3 staging=$4 ldflags=$5 output=$6 gomod pkg
	shift 6
	gomod=$(mod_json "$mod@v$version" GoMod)
	local -a replaces=()
	mapfile -t replaces < <(module_replaces "$gomod" "$staging")
	printf '//go:build tools\n\npackage tools\n\nimport (\n' >"$dir/tools.go"
	for pkg in "$@"; do printf '\t_ "%s"\n' "$pkg" >>"$dir/tools.go"; done
	printf ')\n' >>"$dir/tools.go"
	(
		cd "$dir" || exit
		((${#replaces[@]} == 0)) || go mod edit "${replaces[@]}"
		((${#WRAPPER_EDITS[@]} == 0)) || go mod edit "${WRAPPER_EDITS[@]}"
		go get -tags tools "$mod@v$version"
		go mod tidy -e
		# shellcheck disable=SC2086 # WRAPPER_FLAGS is a list of flags
		go build ${WRAPPER_FLAGS:-} -ldflags "$ldflags" -o "$output" "$@"
	)
}
WRAPPER_EDITS=()

# build_kubernetes DIR VERSION OUTDIR PACKAGE...: k8s.io/kubernetes's PACKAGEs (cmd/kubelet,
# test/images/agnhost, ...) at VERSION into OUTDIR/, through the throwaway module DIR with every
# staging module replaced by its matching v0.x release (`go install` of k8s.io/kubernetes fails on
# its own replace directives), the version stamped as a release's is: unstamped, clients cannot
# parse the server's version and kubeadm reads v0.0.0-master and refuses it. Both tiers build the
# same release this way, so the Go build cache serves the second.
build_kubernetes() {
	local dir=$1 version=$2 out=$3 minor patch ld="$LDFLAGS_BASE" f
	shift 3
	minor=${version#*.}
	minor=${minor%%.*}
	patch=${version##*.}
	for f in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $f.gitVersion=v$version -X $f.gitMajor=1 -X $f.gitMinor=$minor"
		ld+=" -X $f.gitTreeState=clean -X $f.gitCommit=0000000000000000000000000000000000000000"
		ld+=" -X $f.buildDate=1970-01-01T00:00:00Z"
	done
	new_module "$dir" k8slab.local/build/kubernetes
	local -a pkgs=()
	for f in "$@"; do pkgs+=("k8s.io/kubernetes/$f"); done
	wrapper_build "$dir" k8s.io/kubernetes "$version" "0.$minor.$patch" "$ld" "$out/" "${pkgs[@]}"
}

# build_etcd DIR VERSION OUTPUT: etcd as its release binary runs it (a main calling etcdmain.Main).
build_etcd() {
	local dir=$1 version=$2 output=$3
	new_module "$dir" k8slab.local/build/etcd
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
		cd "$dir" || exit
		go get "go.etcd.io/etcd/server/v3@v$version"
		go mod tidy
		go build -ldflags "$LDFLAGS_BASE" -o "$output.tmp" .
	)
	mv -f "$output.tmp" "$output"
}
