# shellcheck shell=bash
# What tools/build-pulumi-toolchain.sh and tools/build-control-plane.sh share, sourced by both:
# options, messages, the cache folders, the Go environment, modules read through the proxy,
# throwaway modules, and timed build steps. Defining things is all sourcing it does.
#
# The sourcing script sets, before it calls anything here:
#   LOG_TAG           the tag of its messages ("[LOG_TAG] ...")
#   mode, force, quiet  its defaults, before build_option takes the options (quiet=1: no
#                     progress messages)
#   REPO_ROOT         the repository (a cache root must be outside it)
#   MODULE_GO         the `go` line of its throwaway modules (it sets the built binaries'
#                     default GODEBUG, so each script keeps its own)
#   SUMMARY, TOTAL_START  an array of timing lines and the $SECONDS the build started at
# and calls cache_dirs, which sets DIR, BIN, SRC (where modules are downloaded from) and LOGS
# (the step logs).

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
