#!/usr/bin/env bash
# Build an offline Pulumi toolchain for k8s-lab from Go modules (through the Go
# module proxy only: Pulumi's installer and plugin servers are not reachable).
#
#   pulumi                       CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
#   pulumi-language-python       upstream Python language host (see NOTE 2)
#   pulumi-language-python-exec  Python shim, copied from github.com/pulumi/pulumi/sdk/v3
#   pulumi-resource-pulumi-python  provider of Python dynamic resources, copied from sdk/v3 too
#   pulumi-resource-kubernetes   github.com/pulumi/pulumi-kubernetes/provider/v4 (see NOTE 3)
#   pulumi-resource-command      upstream pulumi-command provider (see NOTE 4)
#
# Everything is cached outside the repository, in
#   ${K8S_LAB_TOOLCHAIN_DIR:-$HOME/.cache/k8s-lab/toolchain}/<versions>/{bin,plugins,src,logs}
# and a component whose binary exists is not rebuilt, so a warm run takes seconds.
# The resource plugins are then installed into the Pulumi plugin cache
# ($PULUMI_HOME/plugins, default ~/.pulumi/plugins) with `pulumi plugin install
# --file`, so the engine never tries to download them.
#
# Usage: tools/build-pulumi-toolchain.sh [options]
#   (no option), --print-env  build what is missing, install the plugins, then print
#                             `export PATH="<bin>:$PATH"` on stdout:
#                               eval "$(tools/build-pulumi-toolchain.sh)"
#   --print-path              same, but print only the bin directory on stdout
#   --check                   build nothing; exit 0 (and print the bin dir) if every
#                             component is cached and the plugins are installed, else 1
#   --no-plugin-install       do not touch $PULUMI_HOME
#   --force                   rebuild every component
#   -q, --quiet               no progress on stderr: only warnings, errors and, when
#                             something was built, the timing summary
#   -h, --help                this text
# Progress, warnings and the timing summary go to stderr; stdout carries only the
# line(s) described above.
#
# Environment:
#   K8S_LAB_TOOLCHAIN_DIR      cache root (default $HOME/.cache/k8s-lab/toolchain)
#   PULUMI_VERSION             Python SDK version; default from requirements.txt
#                              (pulumi==X or pulumi>=X), else 3.272.0
#   PULUMI_COMMAND_VERSION     default from requirements.txt (pulumi-command), else 1.2.1
#   PULUMI_KUBERNETES_VERSION  default from requirements.txt (pulumi-kubernetes), else 4.34.2
#   PULUMI_CLI_VERSION         pkg/v3 version the CLI, language host and command
#                              provider are built from (default 3.274.1, see NOTE 1)
#   K8S_PROVIDER_MODULE_VERSION  provider/v4 module version built (see NOTE 3)
#   K8S_SDK_MODULE_VERSION       pulumi-kubernetes/sdk/v4 version used for its ../sdk replace
#   K8S_LAB_UPSTREAM_DIR       upstream sources of the command provider, the provider framework
#                              and the language host (default: ../shared/upstream beside the
#                              repository; see NOTE 2 and NOTE 4)
#   PULUMI_HOME                where the plugins are installed (default ~/.pulumi)
#   GOPROXY                    default https://proxy.golang.org (no "direct" fallback)
#   GOMODCACHE, GOCACHE        the usual Go caches (the script leaves them in place)
#
# NOTE 1: the proxy does not serve github.com/pulumi/pulumi/pkg/v3 at v3.271.0-v3.273.0,
#   so the CLI cannot be v3.272.0. It is built from the nearest served release above
#   the SDK, v3.274.1 (a newer CLI runs older SDKs); `pulumi version` prints that.
# NOTE 2: github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 is not
#   served by the module proxy at any version. The host is built from its upstream
#   source (github.com/pulumi/pulumi, sdk/python/cmd/pulumi-language-python, 3.260),
#   read from K8S_LAB_UPSTREAM_DIR/pulumi-language-python-v3.260 and copied into the
#   cache before building (the source tree may be read-only), with its in-repo
#   replaces of pkg/v3 and sdk/v3 swapped for the served v3.260.0 releases. It runs
#   programs through pulumi-language-python-exec taken from sdk/v3 at PULUMI_VERSION.
# NOTE 3: pulumi-kubernetes/provider/v4 is served only at the pseudo-version
#   v4.0.0-20260115033456-f47bc2d6f199 (a main-branch commit of 2026-01-15), not at
#   v4.34.2. That code is built with its committed schema.json embedded and installed
#   as plugin version PULUMI_KUBERNETES_VERSION, which the Python SDK asks for.
# NOTE 4: github.com/pulumi/pulumi-command/provider is not served at any version,
#   nor is github.com/pulumi/pulumi-go-provider v1.3.0 it is written on. Both are
#   read from K8S_LAB_UPSTREAM_DIR (pulumi-command-v1.2.1/provider and
#   pulumi-go-provider-v1.3.0), copied into the cache, and the provider is built
#   with the framework replaced by that copy: the real provider, with upstream's own
#   lifecycle (a changed create, dir or environment updates in place; only a changed
#   triggers replaces).
# Without K8S_LAB_UPSTREAM_DIR the script stops and says how to install the official
# Pulumi CLI instead (https://www.pulumi.com/docs/install/), which downloads the same
# plugins by itself.
set -euo pipefail

readonly RECIPE_REV=2 # bump when the build recipe or embedded sources change

DEFAULT_PULUMI_VERSION=3.272.0
DEFAULT_COMMAND_VERSION=1.2.1
DEFAULT_KUBERNETES_VERSION=4.34.2
DEFAULT_CLI_VERSION=3.274.1
DEFAULT_K8S_PROVIDER_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199
DEFAULT_K8S_SDK_MODULE_VERSION=v4.22.2
# The language host's upstream source is at 3.260; it is built against these served releases.
LANGHOST_MODULE_VERSION=v3.260.0
COMMAND_SOURCE=pulumi-command-v1.2.1
GO_PROVIDER_SOURCE=pulumi-go-provider-v1.3.0
LANGHOST_SOURCE=pulumi-language-python-v3.260

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
LOG_TAG=toolchain
MODULE_GO=1.26
# shellcheck source-path=SCRIPTDIR source=go-build.sh
. "$SCRIPT_DIR/go-build.sh"

mode=print-env
force=0
quiet=0
install_plugins=1

while (($#)); do
	case "$1" in
	--no-plugin-install) install_plugins=0 ;;
	*) build_option "$1" ;;
	esac
	shift
done

for tool in go python3; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required on PATH"
done

# --- versions ---------------------------------------------------------------

# requirement_version NAME: the version pinned or floored for NAME in requirements.txt
# (==, >=, ~= or ===; "-" and "_" are interchangeable), or nothing.
requirement_version() {
	local req="$REPO_ROOT/requirements.txt"
	[[ -f "$req" ]] || return 0
	python3 - "$req" "$1" <<'PY' || true
import re, sys
path, want = sys.argv[1], sys.argv[2]
norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()
for line in open(path, encoding="utf-8", errors="replace"):
    line = line.split("#", 1)[0].strip()
    m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$", line)
    if not m or norm(m.group(1)) != norm(want):
        continue
    v = re.search(r"(===|==|>=|~=)\s*v?([0-9]+\.[0-9]+\.[0-9]+)\b", m.group(3))
    if v:
        print(v.group(2))
        break
PY
}

pick_version() { # pick_version ENV_VALUE REQUIREMENT_NAME DEFAULT
	local v="${1#v}"
	[[ -n "$v" ]] || v=$(requirement_version "$2")
	if ! semver_ok "$v"; then
		[[ -z "$v" ]] || warn "ignoring unparsable version '$v' for $2"
		v=$3
	fi
	printf '%s\n' "$v"
}

PULUMI_VERSION=$(pick_version "${PULUMI_VERSION:-}" pulumi "$DEFAULT_PULUMI_VERSION")
PULUMI_COMMAND_VERSION=$(pick_version "${PULUMI_COMMAND_VERSION:-}" pulumi-command "$DEFAULT_COMMAND_VERSION")
PULUMI_KUBERNETES_VERSION=$(pick_version "${PULUMI_KUBERNETES_VERSION:-}" pulumi-kubernetes "$DEFAULT_KUBERNETES_VERSION")
PULUMI_CLI_VERSION=${PULUMI_CLI_VERSION:-$DEFAULT_CLI_VERSION}
PULUMI_CLI_VERSION=${PULUMI_CLI_VERSION#v}
semver_ok "$PULUMI_CLI_VERSION" || die "PULUMI_CLI_VERSION must look like 3.274.1"
K8S_PROVIDER_MODULE_VERSION=${K8S_PROVIDER_MODULE_VERSION:-$DEFAULT_K8S_PROVIDER_MODULE_VERSION}
K8S_SDK_MODULE_VERSION=${K8S_SDK_MODULE_VERSION:-$DEFAULT_K8S_SDK_MODULE_VERSION}
UPSTREAM_DIR=${K8S_LAB_UPSTREAM_DIR:-$REPO_ROOT/../shared/upstream}

if [[ "$(printf '%s\n%s\n' "$PULUMI_CLI_VERSION" "$PULUMI_VERSION" | sort -V | head -n1)" != "$PULUMI_VERSION" ]]; then
	warn "CLI $PULUMI_CLI_VERSION is older than the Python SDK $PULUMI_VERSION; set PULUMI_CLI_VERSION to a newer served release"
fi

knobs="sdk=$PULUMI_VERSION cli=$PULUMI_CLI_VERSION command=$PULUMI_COMMAND_VERSION"
knobs+=" kubernetes=$PULUMI_KUBERNETES_VERSION k8smod=$K8S_PROVIDER_MODULE_VERSION"
knobs+=" k8ssdk=$K8S_SDK_MODULE_VERSION recipe=$RECIPE_REV"
knobs+=" upstream=$COMMAND_SOURCE,$GO_PROVIDER_SOURCE,$LANGHOST_SOURCE@$LANGHOST_MODULE_VERSION"
cache_dirs K8S_LAB_TOOLCHAIN_DIR "$HOME/.cache/k8s-lab/toolchain" \
	"sdk$PULUMI_VERSION-cli$PULUMI_CLI_VERSION-cmd$PULUMI_COMMAND_VERSION-k8s$PULUMI_KUBERNETES_VERSION" "$knobs"
PLUGINS="$DIR/plugins"
PULUMI_HOME_DIR=${PULUMI_HOME:-$HOME/.pulumi}

CLI_BIN="$BIN/pulumi"
LANG_BIN="$BIN/pulumi-language-python"
EXEC_SCRIPT="$BIN/pulumi-language-python-exec"
DYNAMIC_SCRIPT="$BIN/pulumi-resource-pulumi-python"
CMD_PLUGIN="$PLUGINS/pulumi-resource-command"
K8S_PLUGIN="$PLUGINS/pulumi-resource-kubernetes"

plugin_installed() { # plugin_installed NAME VERSION BINARY
	local installed="$PULUMI_HOME_DIR/plugins/resource-$1-v$2/pulumi-resource-$1"
	[[ -x "$installed" && ! -e "$PULUMI_HOME_DIR/plugins/resource-$1-v$2.partial" ]] &&
		cmp -s "$installed" "$3"
}

outputs() {
	printf '%s\n' "$CLI_BIN" "$LANG_BIN" "$EXEC_SCRIPT" "$DYNAMIC_SCRIPT" "$CMD_PLUGIN" "$K8S_PLUGIN"
}

all_built() {
	[[ -x "$CLI_BIN" && -x "$LANG_BIN" && -f "$EXEC_SCRIPT" && -x "$DYNAMIC_SCRIPT" && -x "$CMD_PLUGIN" && -x "$K8S_PLUGIN" ]]
}

if [[ "$mode" == check ]]; then
	all_built || exit 1
	if ((install_plugins)); then
		plugin_installed command "$PULUMI_COMMAND_VERSION" "$CMD_PLUGIN" || exit 1
		plugin_installed kubernetes "$PULUMI_KUBERNETES_VERSION" "$K8S_PLUGIN" || exit 1
	fi
	printf '%s\n' "$BIN"
	exit 0
fi

upstream_missing() {
	local name
	for name in "$COMMAND_SOURCE/provider/go.mod" "$GO_PROVIDER_SOURCE/go.mod" "$LANGHOST_SOURCE/main.go"; do
		[[ -f "$UPSTREAM_DIR/$name" ]] || {
			printf '%s\n' "$UPSTREAM_DIR/$name"
			return 0
		}
	done
	return 1
}

if missing=$(upstream_missing) && ! { [[ -x "$LANG_BIN" && -x "$CMD_PLUGIN" ]] && ((!force)); }; then
	die "the upstream sources of the command provider and the Python language host are not here
(missing: $missing). The Go module proxy does not serve them, so this script builds them
from a copy of their sources: set K8S_LAB_UPSTREAM_DIR to a folder holding
$COMMAND_SOURCE/provider, $GO_PROVIDER_SOURCE and $LANGHOST_SOURCE.
Or use the official Pulumi CLI instead of this toolchain: install it from
https://www.pulumi.com/docs/install/ (curl -fsSL https://get.pulumi.com | sh); it downloads
the command and kubernetes plugins by itself on the first 'pulumi preview'."
fi

mkdir -p "$BIN" "$PLUGINS" "$SRC" "$LOGS"

begin_builds

# --- 1. pulumi CLI ----------------------------------------------------------

build_cli() {
	local dir="$SRC/cli" gomod
	new_module "$dir" k8slab.local/toolchain/cli
	gomod=$(mod_json "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_CLI_VERSION" GoMod) ||
		{
			echo "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_CLI_VERSION is not available from $GOPROXY; set PULUMI_CLI_VERSION to a served version"
			return 1
		}
	local -a replaces=()
	mapfile -t replaces < <(module_replaces "$gomod")
	if ((${#replaces[@]})); then
		(cd "$dir" && go mod edit "${replaces[@]}")
	fi
	(
		cd "$dir"
		go get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v$PULUMI_CLI_VERSION" \
			"github.com/pulumi/pulumi/sdk/v3@v$PULUMI_CLI_VERSION"
		go build -ldflags "$LDFLAGS_BASE -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_CLI_VERSION" \
			-o "$CLI_BIN.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
	)
	mv -f "$CLI_BIN.tmp" "$CLI_BIN"
}

# --- 2. Python language host ---------------------------------------------------

# copy_upstream NAME DEST: a writable copy of one upstream source tree.
copy_upstream() {
	rm -rf "$2"
	mkdir -p "$(dirname "$2")"
	cp -R "$UPSTREAM_DIR/$1" "$2"
	chmod -R u+w "$2"
}

build_langhost() {
	local dir="$SRC/$LANGHOST_SOURCE"
	copy_upstream "$LANGHOST_SOURCE" "$dir"
	(
		cd "$dir"
		# Upstream builds it inside the pulumi repository (replaces ../../../../pkg and ../../..);
		# here the same packages come from the served release of the source's version.
		go mod edit -dropreplace github.com/pulumi/pulumi/pkg/v3 -dropreplace github.com/pulumi/pulumi/sdk/v3 \
			-require "github.com/pulumi/pulumi/pkg/v3@$LANGHOST_MODULE_VERSION" \
			-require "github.com/pulumi/pulumi/sdk/v3@$LANGHOST_MODULE_VERSION"
		go build -ldflags "$LDFLAGS_BASE -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$LANGHOST_MODULE_VERSION" \
			-o "$LANG_BIN.tmp" .
	)
	mv -f "$LANG_BIN.tmp" "$LANG_BIN"
}

# install_from_sdk PATH OUTPUT VERSION FALLBACK_VERSION: install PATH of the sdk/v3 module at
# VERSION (FALLBACK_VERSION when that is not served) as the executable OUTPUT.
install_from_sdk() {
	local path=$1 output=$2 sdkdir
	if ! sdkdir=$(mod_json "github.com/pulumi/pulumi/sdk/v3@v$3" Dir); then
		echo "sdk/v3@v$3 is not available; taking $path from sdk/v3@v$4"
		sdkdir=$(mod_json "github.com/pulumi/pulumi/sdk/v3@v$4" Dir)
	fi
	local src="$sdkdir/$path"
	[[ -f "$src" ]] || {
		echo "no $path in $sdkdir"
		return 1
	}
	install -m 0755 "$src" "$output.tmp"
	mv -f "$output.tmp" "$output"
	echo "installed $src"
}

# The shim the language host runs programs through, from the SDK the program uses.
install_exec_script() {
	install_from_sdk python/cmd/pulumi-language-python-exec "$EXEC_SCRIPT" "$PULUMI_VERSION" "$PULUMI_CLI_VERSION"
}

# The provider of Python dynamic resources (pulumi.dynamic), which a Pulumi release bundles next
# to the CLI: a shell script that runs `python -m pulumi.dynamic` in the project's virtualenv.
install_dynamic_provider_script() {
	install_from_sdk python/dist/pulumi-resource-pulumi-python "$DYNAMIC_SCRIPT" "$PULUMI_CLI_VERSION" "$PULUMI_VERSION"
}

# --- 3a. command provider -------------------------------------------------------

build_command() {
	local dir="$SRC/$COMMAND_SOURCE" framework="$SRC/$GO_PROVIDER_SOURCE"
	copy_upstream "$GO_PROVIDER_SOURCE" "$framework"
	copy_upstream "$COMMAND_SOURCE" "$dir"
	(
		cd "$dir/provider"
		go mod edit -replace "github.com/pulumi/pulumi-go-provider=$framework"
		go build -ldflags "$LDFLAGS_BASE -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=v$PULUMI_COMMAND_VERSION" \
			-o "$CMD_PLUGIN.tmp" ./cmd/pulumi-resource-command
	)
	mv -f "$CMD_PLUGIN.tmp" "$CMD_PLUGIN"
}

# --- 3b. kubernetes provider ------------------------------------------------------

build_kubernetes() {
	local dir="$SRC/kubernetes" mod=github.com/pulumi/pulumi-kubernetes/provider/v4 moddir gomod
	new_module "$dir" k8slab.local/toolchain/kubernetes
	moddir=$(mod_json "$mod@$K8S_PROVIDER_MODULE_VERSION" Dir) ||
		{
			echo "$mod@$K8S_PROVIDER_MODULE_VERSION is not available from $GOPROXY; set K8S_PROVIDER_MODULE_VERSION"
			return 1
		}
	gomod=$(mod_json "$mod@$K8S_PROVIDER_MODULE_VERSION" GoMod)
	local schema_dir="$moddir/cmd/pulumi-resource-kubernetes"
	[[ -f "$schema_dir/schema.json" ]] || {
		echo "no schema.json in $schema_dir"
		return 1
	}
	# What the provider's `go generate` does: stamp the version into the schema and
	# minify both embedded files (schema-embed.json is not in the module zip).
	python3 - "$schema_dir" "$PULUMI_KUBERNETES_VERSION" "$dir" <<'PY'
import json, os, sys
src, version, out = sys.argv[1:4]
with open(os.path.join(src, "schema.json")) as f:
    schema = json.load(f)
schema["version"] = version
with open(os.path.join(out, "schema-embed.json"), "w") as f:
    json.dump(schema, f, separators=(",", ":"))
mapping = os.path.join(src, "terraform-mapping.json")
data = json.load(open(mapping)) if os.path.exists(mapping) else {}
with open(os.path.join(out, "terraform-mapping-embed.json"), "w") as f:
    json.dump(data, f, separators=(",", ":"))
PY
	cp "$REPO_ROOT/.ci/toolchain/kubernetes/main.go" "$dir/main.go"
	local -a replaces=()
	mapfile -t replaces < <(module_replaces "$gomod")
	# The provider replaces its own SDK with ../sdk; use a served release instead
	# (for every version, since the one it requires may not be served).
	replaces+=("-replace=github.com/pulumi/pulumi-kubernetes/sdk/v4=github.com/pulumi/pulumi-kubernetes/sdk/v4@$K8S_SDK_MODULE_VERSION")
	(
		cd "$dir"
		go mod edit "${replaces[@]}"
		go get "$mod@$K8S_PROVIDER_MODULE_VERSION"
		go mod tidy
		go build -ldflags "$LDFLAGS_BASE -X $mod/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" \
			-o "$K8S_PLUGIN.tmp" .
	)
	mv -f "$K8S_PLUGIN.tmp" "$K8S_PLUGIN"
}

step pulumi "$CLI_BIN" build_cli
step pulumi-language-python "$LANG_BIN" build_langhost
step pulumi-language-python-exec "$EXEC_SCRIPT" install_exec_script
step pulumi-resource-pulumi-python "$DYNAMIC_SCRIPT" install_dynamic_provider_script
step pulumi-resource-command "$CMD_PLUGIN" build_command
step pulumi-resource-kubernetes "$K8S_PLUGIN" build_kubernetes

# --- plugin install -----------------------------------------------------------------

install_plugin() { # install_plugin NAME VERSION BINARY
	local name=$1 version=$2 binary=$3 start=$SECONDS
	if plugin_installed "$name" "$version" "$binary"; then
		SUMMARY+=("$(printf '%-28s %6ss  present' "install $name" 0)")
		log "plugin resource $name v$version: already in $PULUMI_HOME_DIR/plugins"
		return 0
	fi
	log "plugin resource $name v$version: installing into $PULUMI_HOME_DIR/plugins"
	PULUMI_HOME="$PULUMI_HOME_DIR" PULUMI_SKIP_UPDATE_CHECK=true \
		"$CLI_BIN" plugin install resource "$name" "$version" --file "$binary" --reinstall >&2 ||
		die "pulumi plugin install resource $name $version --file $binary failed"
	plugin_installed "$name" "$version" "$binary" ||
		die "plugin $name v$version is not where expected in $PULUMI_HOME_DIR/plugins"
	SUMMARY+=("$(printf '%-28s %6ss  installed' "install $name" $((SECONDS - start)))")
}

if ((install_plugins)); then
	install_plugin command "$PULUMI_COMMAND_VERSION" "$CMD_PLUGIN"
	install_plugin kubernetes "$PULUMI_KUBERNETES_VERSION" "$K8S_PLUGIN"
fi

# --- summary ------------------------------------------------------------------------

report_timings "$(du -sh "$BIN" "$PLUGINS" 2>/dev/null | awk '{printf "%s %s  ", $1, $2}')"

if [[ "$mode" == print-path ]]; then
	printf '%s\n' "$BIN"
else
	# shellcheck disable=SC2016 # $PATH is for the caller's eval to expand
	printf 'export PATH="%s:$PATH"\n' "$BIN"
fi
