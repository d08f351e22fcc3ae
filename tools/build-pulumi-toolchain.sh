#!/usr/bin/env bash
# Build an offline Pulumi toolchain for k8s-lab from Go modules (through the Go
# module proxy only: Pulumi's installer and plugin servers are not reachable).
#
#   pulumi                       CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
#   pulumi-language-python       Python language host (see NOTE 2)
#   pulumi-language-python-exec  Python shim, copied from github.com/pulumi/pulumi/sdk/v3
#   pulumi-resource-kubernetes   github.com/pulumi/pulumi-kubernetes/provider/v4 (see NOTE 3)
#   pulumi-resource-command      local subset of the command provider (see NOTE 4)
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
#   -q, --quiet               only errors and the timing summary on stderr
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
#   PULUMI_HOME                where the plugins are installed (default ~/.pulumi)
#   GOPROXY                    default https://proxy.golang.org (no "direct" fallback)
#   GOMODCACHE, GOCACHE        the usual Go caches (the script leaves them in place)
#
# NOTE 1: the proxy does not serve github.com/pulumi/pulumi/pkg/v3 at v3.271.0-v3.273.0,
#   so the CLI cannot be v3.272.0. It is built from the nearest served release above
#   the SDK, v3.274.1 (a newer CLI runs older SDKs); `pulumi version` prints that.
# NOTE 2: github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 is not
#   served at any version. The host built here is a small one written against
#   sdk/v3 (same gRPC protocol; interpreter and virtualenv handling from the SDK's own
#   python/toolchain package) that runs programs through pulumi-language-python-exec
#   taken from sdk/v3 at PULUMI_VERSION. It honours runtime options toolchain
#   (pip/uv/poetry), virtualenv and typechecker; RunPlugin (Python component
#   providers) is not supported. Without a virtualenv it runs `python3` from PATH
#   (or $PULUMI_PYTHON_CMD).
# NOTE 3: pulumi-kubernetes/provider/v4 is served only at the pseudo-version
#   v4.0.0-20260115033456-f47bc2d6f199 (a main-branch commit of 2026-01-15), not at
#   v4.34.2. That code is built with its committed schema.json embedded and installed
#   as plugin version PULUMI_KUBERNETES_VERSION, which the Python SDK asks for.
# NOTE 4: github.com/pulumi/pulumi-command/provider is not served at any version. The
#   plugin built here implements command:local:Command (create/update/delete, dir,
#   environment, interpreter, stdin, triggers, logging, addPreviousOutputInEnv,
#   stdout/stderr outputs) and the command:local:run function; remote:* resources,
#   assetPaths and archivePaths are rejected with an error.
set -euo pipefail

readonly RECIPE_REV=1 # bump when the build recipe or embedded sources change

DEFAULT_PULUMI_VERSION=3.272.0
DEFAULT_COMMAND_VERSION=1.2.1
DEFAULT_KUBERNETES_VERSION=4.34.2
DEFAULT_CLI_VERSION=3.274.1
DEFAULT_K8S_PROVIDER_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199
DEFAULT_K8S_SDK_MODULE_VERSION=v4.22.2

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

mode=print-env
force=0
quiet=0
install_plugins=1

usage() {
	sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

while (($#)); do
	case "$1" in
	--print-env) mode=print-env ;;
	--print-path) mode=print-path ;;
	--check) mode=check ;;
	--force) force=1 ;;
	--no-plugin-install) install_plugins=0 ;;
	-q | --quiet) quiet=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "build-pulumi-toolchain: unknown option: $1 (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

log() { ((quiet)) || printf '[toolchain] %s\n' "$*" >&2; }
warn() { printf '[toolchain] warning: %s\n' "$*" >&2; }
die() {
	printf '[toolchain] error: %s\n' "$*" >&2
	exit 1
}

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

semver_ok() { [[ "$1" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; }

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

if [[ "$(printf '%s\n%s\n' "$PULUMI_CLI_VERSION" "$PULUMI_VERSION" | sort -V | head -n1)" != "$PULUMI_VERSION" ]]; then
	warn "CLI $PULUMI_CLI_VERSION is older than the Python SDK $PULUMI_VERSION; set PULUMI_CLI_VERSION to a newer served release"
fi

knobs="sdk=$PULUMI_VERSION cli=$PULUMI_CLI_VERSION command=$PULUMI_COMMAND_VERSION"
knobs+=" kubernetes=$PULUMI_KUBERNETES_VERSION k8smod=$K8S_PROVIDER_MODULE_VERSION"
knobs+=" k8ssdk=$K8S_SDK_MODULE_VERSION recipe=$RECIPE_REV"
knob_hash=$(printf '%s' "$knobs" | cksum | cut -d' ' -f1)
KEY="sdk$PULUMI_VERSION-cli$PULUMI_CLI_VERSION-cmd$PULUMI_COMMAND_VERSION-k8s$PULUMI_KUBERNETES_VERSION-$knob_hash"

TOOLCHAIN_ROOT=${K8S_LAB_TOOLCHAIN_DIR:-$HOME/.cache/k8s-lab/toolchain}
mkdir -p "$TOOLCHAIN_ROOT"
TOOLCHAIN_ROOT=$(cd "$TOOLCHAIN_ROOT" && pwd)
case "$TOOLCHAIN_ROOT/" in
"$REPO_ROOT"/*) die "K8S_LAB_TOOLCHAIN_DIR must be outside the repository ($REPO_ROOT)" ;;
esac
DIR="$TOOLCHAIN_ROOT/$KEY"
BIN="$DIR/bin"
PLUGINS="$DIR/plugins"
SRC="$DIR/src"
LOGS="$DIR/logs"
PULUMI_HOME_DIR=${PULUMI_HOME:-$HOME/.pulumi}

CLI_BIN="$BIN/pulumi"
LANG_BIN="$BIN/pulumi-language-python"
EXEC_SCRIPT="$BIN/pulumi-language-python-exec"
CMD_PLUGIN="$PLUGINS/pulumi-resource-command"
K8S_PLUGIN="$PLUGINS/pulumi-resource-kubernetes"

plugin_installed() { # plugin_installed NAME VERSION BINARY
	local installed="$PULUMI_HOME_DIR/plugins/resource-$1-v$2/pulumi-resource-$1"
	[[ -x "$installed" && ! -e "$PULUMI_HOME_DIR/plugins/resource-$1-v$2.partial" ]] &&
		cmp -s "$installed" "$3"
}

all_built() {
	[[ -x "$CLI_BIN" && -x "$LANG_BIN" && -f "$EXEC_SCRIPT" && -x "$CMD_PLUGIN" && -x "$K8S_PLUGIN" ]]
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

mkdir -p "$BIN" "$PLUGINS" "$SRC" "$LOGS"

# One build at a time per cache key (parallel CI jobs, two shells...).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$DIR/.lock"
	flock 9
fi

if ((force)); then
	log "--force: removing cached binaries in $DIR"
	rm -f "$CLI_BIN" "$LANG_BIN" "$EXEC_SCRIPT" "$CMD_PLUGIN" "$K8S_PLUGIN"
fi

# --- Go environment ---------------------------------------------------------

export GOPROXY=${GOPROXY:-https://proxy.golang.org}
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
LDFLAGS_BASE="-s -w"

log "toolchain dir: $DIR"
log "versions: $knobs"
log "go: $(go env GOVERSION), GOPROXY=$GOPROXY, GOMODCACHE=$(go env GOMODCACHE), GOCACHE=$(go env GOCACHE)"

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

# copy_replaces GOMOD_FILE: print `go mod edit -replace` arguments for the module
# replacements of GOMOD_FILE that point at other modules (local paths are skipped).
copy_replaces() {
	go mod edit -json "$1" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    new = r["New"]
    if not new.get("Version"):
        continue  # a local directory: the caller decides
    old = r["Old"]["Path"] + ("@" + r["Old"]["Version"] if r["Old"].get("Version") else "")
    print("-replace=%s=%s@%s" % (old, new["Path"], new["Version"]))'
}

# new_module DIR MODULE_PATH: an empty throwaway module.
new_module() {
	rm -rf "$1"
	mkdir -p "$1"
	printf 'module %s\n\ngo 1.26\n' "$2" >"$1/go.mod"
}

declare -a SUMMARY=()
TOTAL_START=$SECONDS

# step NAME OUTPUT FUNCTION: run FUNCTION unless OUTPUT exists; time it.
step() {
	local name=$1 output=$2 fn=$3 start=$SECONDS logfile="$LOGS/$1.log"
	if [[ -e "$output" ]]; then
		SUMMARY+=("$(printf '%-28s %6ss  cached' "$name" 0)")
		log "$name: cached ($output)"
		return 0
	fi
	log "$name: building (log: $logfile)"
	if ! "$fn" >"$logfile" 2>&1; then
		tail -n 40 "$logfile" >&2
		die "$name: build failed after $((SECONDS - start))s; full log: $logfile"
	fi
	[[ -e "$output" ]] || die "$name: build produced no $output"
	SUMMARY+=("$(printf '%-28s %6ss  built' "$name" $((SECONDS - start)))")
	log "$name: built in $((SECONDS - start))s"
}

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
	mapfile -t replaces < <(copy_replaces "$gomod")
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

write_langhost_source() {
	cat >"$1/main.go" <<'GO'
// pulumi-language-python for the k8s-lab offline toolchain.
//
// The upstream language host module is not served by the Go module proxy
// reachable here, so this is a small host written against the same SDK
// (github.com/pulumi/pulumi/sdk/v3): it resolves the Python interpreter with
// the SDK's own python/toolchain package (pip, uv, poetry, virtualenv) and runs
// programs through pulumi-language-python-exec, the script shipped in the SDK
// module, which must sit beside this binary.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

// version is set with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

// exitCodeBail is what pulumi-language-python-exec exits with after it has
// already shown the user an actionable message.
const exitCodeBail = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	execScript string
	tracing    string

	mu            sync.Mutex
	engineAddress string
}

func main() {
	var tracing string
	flag.StringVar(&tracing, "tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	// Accepted for compatibility with engines that pass options as flags.
	flag.String("root", "", "Project root path (ignored; sent by the engine)")
	flag.String("virtualenv", "", "Virtual environment path (ignored; sent by the engine)")
	flag.String("toolchain", "", "Python toolchain (ignored; sent by the engine)")
	flag.String("typechecker", "", "Type checker (ignored; sent by the engine)")
	flag.Parse()

	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-python", "pulumi-language-python", tracing)

	script, err := findExecScript()
	if err != nil {
		cmdutil.Exit(err)
	}

	h := &host{execScript: script, tracing: tracing}
	if args := flag.Args(); len(args) > 0 {
		h.engineAddress = args[0]
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	if h.engineAddress != "" {
		go func() {
			// Exit when the engine goes away.
			_ = rpcutil.Healthcheck(ctx, h.engineAddress, 5*time.Minute, cancel)
		}()
	}

	cancelServe := make(chan bool)
	go func() {
		<-ctx.Done()
		close(cancelServe)
	}()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelServe,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC server stopped: %w", err))
	}
}

// findExecScript locates pulumi-language-python-exec next to this binary
// (following symlinks), falling back to $PATH.
func findExecScript() (string, error) {
	const name = "pulumi-language-python-exec"
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		candidate := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("could not find %s next to the language host or on $PATH", name)
}

type programInfo struct {
	root, programDir, entryPoint string
	options                      toolchain.PythonOptions
	typechecker                  string
}

func parseInfo(info *pulumirpc.ProgramInfo, fallbackDir string) (programInfo, error) {
	pi := programInfo{root: fallbackDir, programDir: fallbackDir, entryPoint: "."}
	if info != nil {
		if info.RootDirectory != "" {
			pi.root = info.RootDirectory
		}
		if info.ProgramDirectory != "" {
			pi.programDir = info.ProgramDirectory
		}
		if info.EntryPoint != "" {
			pi.entryPoint = info.EntryPoint
		}
	}
	if pi.root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return pi, err
		}
		pi.root = wd
	}
	if pi.programDir == "" {
		pi.programDir = pi.root
	}
	pi.options = toolchain.PythonOptions{Root: pi.root, ProgramDir: pi.programDir}
	if info == nil || info.Options == nil {
		return pi, nil
	}
	opts := info.Options.AsMap()
	if v, ok := opts["virtualenv"].(string); ok {
		pi.options.Virtualenv = v
	}
	if v, ok := opts["typechecker"].(string); ok && v != "" {
		pi.typechecker = v
		switch v {
		case "mypy":
			pi.options.Typechecker = toolchain.TypeCheckerMypy
		case "pyright":
			pi.options.Typechecker = toolchain.TypeCheckerPyright
		default:
			return pi, fmt.Errorf("unsupported typechecker option: %s", v)
		}
	}
	if v, ok := opts["toolchain"].(string); ok && v != "" {
		switch v {
		case "pip":
			pi.options.Toolchain = toolchain.Pip
		case "poetry":
			pi.options.Toolchain = toolchain.Poetry
		case "uv":
			pi.options.Toolchain = toolchain.Uv
		default:
			return pi, fmt.Errorf("unsupported toolchain option: %s", v)
		}
	}
	return pi, nil
}

func (h *host) Handshake(_ context.Context,
	req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.EngineAddress != "" {
		h.engineAddress = req.EngineAddress
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) getEngineAddress() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// listPluginsScript prints, as JSON, the pulumi-plugin.json of every installed
// distribution that declares a resource plugin.
const listPluginsScript = `
import json
from importlib import metadata
out, seen = [], set()
for dist in metadata.distributions():
    for f in (dist.files or []):
        if f.name != "pulumi-plugin.json":
            continue
        try:
            with open(dist.locate_file(f)) as fh:
                d = json.load(fh)
        except Exception:
            continue
        if not d.get("resource"):
            continue
        name = d.get("name") or ""
        if name.startswith("pulumi-"):
            name = name[len("pulumi-"):]
        if not name:
            continue
        d["name"] = name
        key = (name, d.get("version"), json.dumps(d.get("parameterization"), sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        out.append(d)
print(json.dumps(out))
`

type pluginJSON struct {
	Name             string `json:"name"`
	Version          string `json:"version"`
	Server           string `json:"server"`
	Parameterization *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Value   string `json:"value"`
	} `json:"parameterization"`
}

func (h *host) GetRequiredPackages(ctx context.Context,
	req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	pi, err := parseInfo(req.GetInfo(), "")
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(pi.options)
	if err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", listPluginsScript)
	if err != nil {
		return nil, err
	}
	cmd.Dir = pi.programDir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("listing installed Python packages failed: %w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("listing installed Python packages failed: %w", err)
	}
	var plugins []pluginJSON
	if err := json.Unmarshal(out, &plugins); err != nil {
		return nil, fmt.Errorf("parsing installed Python packages: %w", err)
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, p := range plugins {
		dep := &pulumirpc.PackageDependency{Name: p.Name, Kind: "resource", Version: p.Version, Server: p.Server}
		if p.Parameterization != nil {
			value, err := base64.StdEncoding.DecodeString(p.Parameterization.Value)
			if err != nil {
				return nil, fmt.Errorf("parameterization of %s: %w", p.Name, err)
			}
			dep.Parameterization = &pulumirpc.PackageParameterization{
				Name: p.Parameterization.Name, Version: p.Parameterization.Version, Value: value,
			}
		}
		resp.Packages = append(resp.Packages, dep)
	}
	return resp, nil
}

func (h *host) GetRequiredPlugins(ctx context.Context,
	req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	pkgs, err := h.GetRequiredPackages(ctx, &pulumirpc.GetRequiredPackagesRequest{Info: req.GetInfo()})
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, p := range pkgs.Packages {
		if p.Parameterization != nil {
			continue
		}
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Name: p.Name, Kind: p.Kind, Version: p.Version, Server: p.Server,
		})
	}
	return resp, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	pi, err := parseInfo(req.GetInfo(), req.GetPwd())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	tc, err := toolchain.ResolveToolchain(pi.options)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf(
			"%v\nRun `pulumi install` to create the virtual environment and install dependencies.", err)}, nil
	}
	if pi.typechecker != "" {
		check, err := tc.ModuleCommand(ctx, pi.typechecker, pi.programDir)
		if err != nil {
			return &pulumirpc.RunResponse{Error: err.Error()}, nil
		}
		check.Dir = pi.programDir
		check.Stdout, check.Stderr = os.Stdout, os.Stderr
		if err := check.Run(); err != nil {
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("%s type checking failed: %v", pi.typechecker, err)}, nil
		}
	}

	program := req.GetProgram()
	if program == "" {
		program = pi.entryPoint
	}
	pwd := req.GetPwd()
	if pwd == "" {
		pwd = pi.programDir
	}

	args := []string{"-u", h.execScript}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.getEngineAddress())
	add("project", req.GetProject())
	add("root_directory", pi.root)
	add("stack", req.GetStack())
	add("pwd", pwd)
	add("dry_run", fmt.Sprintf("%v", req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	if req.GetConfig() != nil {
		config, err := json.Marshal(req.GetConfig())
		if err != nil {
			return nil, err
		}
		env = append(env, "PULUMI_CONFIG="+string(config))
	}
	env = append(env, "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeysJSON))
	cmd.Env = env
	cmd.Dir = pwd
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr

	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() == exitCodeBail {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", ee.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// streamWriter forwards output to an InstallDependencies stream.
type streamWriter struct {
	mu     *sync.Mutex
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	data := append([]byte(nil), p...)
	resp := &pulumirpc.InstallDependenciesResponse{Stdout: data}
	if w.stderr {
		resp = &pulumirpc.InstallDependenciesResponse{Stderr: data}
	}
	if err := w.stream.Send(resp); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	pi, err := parseInfo(req.GetInfo(), req.GetDirectory())
	if err != nil {
		return err
	}
	tc, err := toolchain.ResolveToolchain(pi.options)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	stdout := streamWriter{mu: &mu, stream: stream}
	stderr := streamWriter{mu: &mu, stream: stream, stderr: true}
	ctx := stream.Context()
	if err := tc.InstallDependencies(ctx, pi.programDir, req.GetUseLanguageVersionTools(),
		true /*showOutput*/, stdout, stderr); err != nil {
		return err
	}
	if req.GetIsPlugin() {
		return tc.InstallPackage(ctx, pi.programDir, req.GetUseLanguageVersionTools(), true, stdout, stderr)
	}
	return nil
}

func (h *host) RuntimeOptionsPrompts(context.Context,
	*pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	pi, err := parseInfo(req.GetInfo(), "")
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(pi.options)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata:   map[string]string{"languageHost": "k8s-lab offline build " + version},
	}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context,
	req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	pi, err := parseInfo(req.GetInfo(), "")
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(pi.options)
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, d := range deps {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return resp, nil
}

func (h *host) RunPlugin(*pulumirpc.RunPluginRequest,
	grpc.ServerStreamingServer[pulumirpc.RunPluginResponse],
) error {
	return status.Error(codes.Unimplemented,
		"running Python plugins is not supported by this offline build of pulumi-language-python")
}
GO
}

build_langhost() {
	local dir="$SRC/language-python"
	new_module "$dir" k8slab.local/toolchain/langhost
	write_langhost_source "$dir"
	(
		cd "$dir"
		go get "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_CLI_VERSION"
		go mod tidy
		go build -ldflags "$LDFLAGS_BASE -X main.version=$PULUMI_CLI_VERSION" -o "$LANG_BIN.tmp" .
	)
	mv -f "$LANG_BIN.tmp" "$LANG_BIN"
}

install_exec_script() {
	local sdkdir
	if ! sdkdir=$(mod_json "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION" Dir); then
		echo "sdk/v3@v$PULUMI_VERSION is not available; taking the exec script from sdk/v3@v$PULUMI_CLI_VERSION"
		sdkdir=$(mod_json "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_CLI_VERSION" Dir)
	fi
	local src="$sdkdir/python/cmd/pulumi-language-python-exec"
	[[ -f "$src" ]] || {
		echo "no python/cmd/pulumi-language-python-exec in $sdkdir"
		return 1
	}
	install -m 0755 "$src" "$EXEC_SCRIPT.tmp"
	mv -f "$EXEC_SCRIPT.tmp" "$EXEC_SCRIPT"
	echo "installed $src"
}

# --- 3a. command provider -------------------------------------------------------

write_command_source() {
	cat >"$1/main.go" <<'GO'
// pulumi-resource-command for the k8s-lab offline toolchain.
//
// The upstream module github.com/pulumi/pulumi-command/provider is not served
// by the Go module proxy reachable here, so this is a small provider written
// against github.com/pulumi/pulumi/sdk/v3 that implements the `local` half of
// the command package with the same tokens and property names as the
// pulumi-command SDKs: the resource command:local:Command and the function
// command:local:run. The `remote` resources are rejected with a clear error, and
// so are assetPaths/archivePaths.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"

	"github.com/blang/semver"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// version is set with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

const (
	commandType = "command:local:Command"
	runToken    = "command:local:run"
)

// Inputs whose change means the command runs again: through `update` when it is
// set, otherwise by replacing the resource (create the new one, delete the old).
var runKeys = []resource.PropertyKey{
	"create", "update", "dir", "environment", "interpreter", "stdin", "triggers",
	"assetPaths", "archivePaths",
}

type commandProvider struct {
	plugin.UnimplementedProvider
	host *provider.HostClient
}

func main() {
	err := provider.Main("command", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return plugin.NewProviderServer(&commandProvider{host: host}), nil
	})
	if err != nil {
		cmdutil.ExitError(err.Error())
	}
}

func (p *commandProvider) Close() error { return nil }

func (p *commandProvider) SignalCancellation(context.Context) error { return nil }

func (p *commandProvider) GetPluginInfo(context.Context) (plugin.PluginInfo, error) {
	v, err := semver.ParseTolerant(version)
	if err != nil {
		return plugin.PluginInfo{}, err
	}
	return plugin.PluginInfo{Version: &v}, nil
}

func (p *commandProvider) GetSchema(context.Context, plugin.GetSchemaRequest) (plugin.GetSchemaResponse, error) {
	schema := fmt.Sprintf(`{"name":"command","version":%q,`+
		`"description":"local subset of the Pulumi Command provider (k8s-lab offline build)"}`, version)
	return plugin.GetSchemaResponse{Schema: []byte(schema)}, nil
}

func (p *commandProvider) CheckConfig(_ context.Context, req plugin.CheckConfigRequest) (plugin.CheckConfigResponse, error) {
	return plugin.CheckConfigResponse{Properties: req.News}, nil
}

func (p *commandProvider) DiffConfig(context.Context, plugin.DiffConfigRequest) (plugin.DiffConfigResponse, error) {
	return plugin.DiffResult{Changes: plugin.DiffNone}, nil
}

func (p *commandProvider) Configure(context.Context, plugin.ConfigureRequest) (plugin.ConfigureResponse, error) {
	return plugin.ConfigureResponse{}, nil
}

func unsupported(t tokens.Type) error {
	return fmt.Errorf("%s is not supported by this offline build of the command provider "+
		"(only %s and %s are)", t, commandType, runToken)
}

func (p *commandProvider) Check(_ context.Context, req plugin.CheckRequest) (plugin.CheckResponse, error) {
	if req.Type != commandType {
		return plugin.CheckResponse{}, unsupported(req.Type)
	}
	var failures []plugin.CheckFailure
	for _, k := range []resource.PropertyKey{"assetPaths", "archivePaths"} {
		if v, ok := req.News[k]; ok && !v.IsNull() {
			failures = append(failures, plugin.CheckFailure{Property: k,
				Reason: string(k) + " is not supported by this offline build of the command provider"})
		}
	}
	return plugin.CheckResponse{Properties: req.News, Failures: failures}, nil
}

func (p *commandProvider) Diff(_ context.Context, req plugin.DiffRequest) (plugin.DiffResponse, error) {
	olds, news := req.OldInputs, req.NewInputs
	keys := map[resource.PropertyKey]bool{}
	for k := range olds {
		keys[k] = true
	}
	for k := range news {
		keys[k] = true
	}
	ignored := map[string]bool{}
	for _, k := range req.IgnoreChanges {
		ignored[k] = true
	}
	hasUpdate := getString(news, "update") != "" || news["update"].ContainsUnknowns()
	runKey := map[resource.PropertyKey]bool{}
	for _, k := range runKeys {
		runKey[k] = true
	}

	var changed, replace []resource.PropertyKey
	detailed := map[string]plugin.PropertyDiff{}
	for k := range keys {
		if ignored[string(k)] {
			continue
		}
		o, hasOld := olds[k]
		n, hasNew := news[k]
		if hasOld && hasNew && !n.ContainsUnknowns() && o.DeepEquals(n) {
			continue
		}
		if (!hasOld || o.IsNull()) && (!hasNew || n.IsNull()) {
			continue
		}
		changed = append(changed, k)
		kind := plugin.DiffUpdate
		if !hasOld || o.IsNull() {
			kind = plugin.DiffAdd
		} else if !hasNew || n.IsNull() {
			kind = plugin.DiffDelete
		}
		if runKey[k] && !hasUpdate {
			replace = append(replace, k)
			switch kind {
			case plugin.DiffAdd:
				kind = plugin.DiffAddReplace
			case plugin.DiffDelete:
				kind = plugin.DiffDeleteReplace
			default:
				kind = plugin.DiffUpdateReplace
			}
		}
		detailed[string(k)] = plugin.PropertyDiff{Kind: kind, InputDiff: true}
	}
	if len(changed) == 0 {
		return plugin.DiffResult{Changes: plugin.DiffNone}, nil
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i] < changed[j] })
	sort.Slice(replace, func(i, j int) bool { return replace[i] < replace[j] })
	return plugin.DiffResult{
		Changes:      plugin.DiffSome,
		ChangedKeys:  changed,
		ReplaceKeys:  replace,
		DetailedDiff: detailed,
	}, nil
}

func newID(name string) (resource.ID, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return resource.ID(name + hex.EncodeToString(b)), nil
}

func unknownString() resource.PropertyValue {
	return resource.MakeComputed(resource.NewStringProperty(""))
}

func (p *commandProvider) Create(ctx context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	if req.Type != commandType {
		return plugin.CreateResponse{}, unsupported(req.Type)
	}
	inputs := req.Properties
	if req.Preview {
		return plugin.CreateResponse{Properties: withOutputs(inputs, unknownString(), unknownString())}, nil
	}
	id, err := newID(req.Name)
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	stdout, stderr, err := p.run(ctx, req.URN, getString(inputs, "create"), inputs, nil)
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	return plugin.CreateResponse{ID: id, Properties: withOutputs(inputs, stdout, stderr)}, nil
}

func (p *commandProvider) Read(_ context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	return plugin.ReadResponse{
		ReadResult: plugin.ReadResult{ID: req.ID, Inputs: req.Inputs, Outputs: req.State},
		Status:     resource.StatusOK,
	}, nil
}

func (p *commandProvider) Update(ctx context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	if req.Type != commandType {
		return plugin.UpdateResponse{}, unsupported(req.Type)
	}
	news := req.NewInputs
	mustRun := false
	for _, k := range runKeys {
		o, n := req.OldInputs[k], news[k]
		if !o.DeepEquals(n) || n.ContainsUnknowns() {
			mustRun = true
		}
	}
	if !mustRun {
		return plugin.UpdateResponse{Properties: withOutputs(news,
			req.OldOutputs["stdout"], req.OldOutputs["stderr"])}, nil
	}
	if req.Preview {
		return plugin.UpdateResponse{Properties: withOutputs(news, unknownString(), unknownString())}, nil
	}
	command := getString(news, "update")
	if command == "" {
		command = getString(news, "create")
	}
	stdout, stderr, err := p.run(ctx, req.URN, command, news, req.OldOutputs)
	if err != nil {
		return plugin.UpdateResponse{}, err
	}
	return plugin.UpdateResponse{Properties: withOutputs(news, stdout, stderr)}, nil
}

func (p *commandProvider) Delete(ctx context.Context, req plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	if req.Type != commandType {
		return plugin.DeleteResponse{}, nil
	}
	state := req.Outputs
	if state == nil {
		state = req.Inputs
	}
	if _, _, err := p.run(ctx, req.URN, getString(state, "delete"), state, state); err != nil {
		return plugin.DeleteResponse{}, err
	}
	return plugin.DeleteResponse{}, nil
}

func (p *commandProvider) Invoke(ctx context.Context, req plugin.InvokeRequest) (plugin.InvokeResponse, error) {
	if string(req.Tok) != runToken {
		return plugin.InvokeResponse{}, fmt.Errorf("%s is not supported by this offline build of the command "+
			"provider (only %s is)", req.Tok, runToken)
	}
	args := req.Args
	if args.ContainsUnknowns() {
		return plugin.InvokeResponse{}, errors.New("command:local:run: arguments are not known yet")
	}
	stdout, stderr, err := p.run(ctx, "", getString(args, "command"), args, nil)
	if err != nil {
		return plugin.InvokeResponse{}, err
	}
	return plugin.InvokeResponse{Properties: withOutputs(args, stdout, stderr)}, nil
}

// withOutputs copies the inputs and adds stdout/stderr (strings or PropertyValues);
// they are secret when any input is.
func withOutputs(inputs resource.PropertyMap, stdout, stderr any) resource.PropertyMap {
	out := inputs.Copy()
	secret := inputs.ContainsSecrets()
	for k, v := range map[resource.PropertyKey]any{"stdout": stdout, "stderr": stderr} {
		var pv resource.PropertyValue
		switch v := v.(type) {
		case resource.PropertyValue:
			pv = v
		case string:
			pv = resource.NewStringProperty(v)
		}
		if pv.IsNull() {
			pv = resource.NewStringProperty("")
		}
		if secret && !pv.IsSecret() && !pv.IsComputed() {
			pv = resource.MakeSecret(pv)
		}
		out[k] = pv
	}
	return out
}

func unwrap(v resource.PropertyValue) resource.PropertyValue {
	for {
		switch {
		case v.IsSecret():
			v = v.SecretValue().Element
		case v.IsOutput():
			v = v.OutputValue().Element
		default:
			return v
		}
	}
}

func getString(m resource.PropertyMap, k resource.PropertyKey) string {
	if v := unwrap(m[k]); v.IsString() {
		return v.StringValue()
	}
	return ""
}

func getBool(m resource.PropertyMap, k resource.PropertyKey, def bool) bool {
	if v := unwrap(m[k]); v.IsBool() {
		return v.BoolValue()
	}
	return def
}

// lineLogger streams complete lines of command output to the engine as status messages.
type lineLogger struct {
	mu   sync.Mutex
	p    *commandProvider
	ctx  context.Context
	urn  resource.URN
	buf  bytes.Buffer
	live bool
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.live {
		return len(b), nil
	}
	l.buf.Write(b)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			break
		}
		l.emit(strings.TrimRight(line, "\r\n"))
	}
	return len(b), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live && l.buf.Len() > 0 {
		l.emit(l.buf.String())
		l.buf.Reset()
	}
}

func (l *lineLogger) emit(line string) {
	if l.p.host != nil && l.urn != "" {
		_ = l.p.host.LogStatus(l.ctx, diag.Info, l.urn, line)
	}
}

// run executes command with the interpreter, dir, environment and stdin of
// props. prev, if non-nil, holds the previous outputs for PULUMI_COMMAND_STDOUT/STDERR.
func (p *commandProvider) run(ctx context.Context, urn resource.URN, command string,
	props, prev resource.PropertyMap,
) (string, string, error) {
	if command == "" {
		return "", "", nil
	}
	interpreter := []string{"/bin/sh", "-c"}
	if iv := unwrap(props["interpreter"]); iv.IsArray() && len(iv.ArrayValue()) > 0 {
		interpreter = nil
		for _, e := range iv.ArrayValue() {
			e = unwrap(e)
			if !e.IsString() {
				return "", "", errors.New("interpreter must be a list of strings")
			}
			interpreter = append(interpreter, e.StringValue())
		}
	}
	args := append(append([]string{}, interpreter[1:]...), command)
	cmd := exec.CommandContext(ctx, interpreter[0], args...)
	cmd.Dir = getString(props, "dir")

	env := os.Environ()
	if ev := unwrap(props["environment"]); ev.IsObject() {
		for _, k := range ev.ObjectValue().StableKeys() {
			if v := unwrap(ev.ObjectValue()[k]); v.IsString() {
				env = append(env, string(k)+"="+v.StringValue())
			}
		}
	}
	if prev != nil && getBool(props, "addPreviousOutputInEnv", true) {
		env = append(env,
			"PULUMI_COMMAND_STDOUT="+getString(prev, "stdout"),
			"PULUMI_COMMAND_STDERR="+getString(prev, "stderr"))
	}
	cmd.Env = env
	if stdin := getString(props, "stdin"); stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}

	logging := getString(props, "logging")
	if logging == "" {
		logging = "stdoutAndStderr"
	}
	var outBuf, errBuf bytes.Buffer
	outLog := &lineLogger{p: p, ctx: ctx, urn: urn, live: logging == "stdout" || logging == "stdoutAndStderr"}
	errLog := &lineLogger{p: p, ctx: ctx, urn: urn, live: logging == "stderr" || logging == "stdoutAndStderr"}
	cmd.Stdout = io.MultiWriter(&outBuf, outLog)
	cmd.Stderr = io.MultiWriter(&errBuf, errLog)
	err := cmd.Run()
	outLog.flush()
	errLog.flush()
	stdout := strings.TrimSuffix(outBuf.String(), "\n")
	stderr := strings.TrimSuffix(errBuf.String(), "\n")
	if err != nil {
		return stdout, stderr, fmt.Errorf("%w: running %q:\n%s\n%s", err, command, stdout, stderr)
	}
	return stdout, stderr, nil
}
GO
}

build_command() {
	local dir="$SRC/command"
	new_module "$dir" k8slab.local/toolchain/command
	write_command_source "$dir"
	(
		cd "$dir"
		go get "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_CLI_VERSION"
		go mod tidy
		go build -ldflags "$LDFLAGS_BASE -X main.version=$PULUMI_COMMAND_VERSION" -o "$CMD_PLUGIN.tmp" .
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
	cat >"$dir/main.go" <<'GO'
// The main of pulumi-kubernetes' cmd/pulumi-resource-kubernetes, with the
// committed schema embedded (the generated *-embed.json files are not in the
// module zip).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
GO
	local -a replaces=()
	mapfile -t replaces < <(copy_replaces "$gomod")
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

if ! ((quiet)) || ((SECONDS - TOTAL_START > 5)); then
	{
		echo "[toolchain] timings:"
		for line in "${SUMMARY[@]}"; do
			echo "[toolchain]   $line"
		done
		printf '[toolchain]   %-28s %6ss\n' total $((SECONDS - TOTAL_START))
		echo "[toolchain] $(du -sh "$BIN" "$PLUGINS" 2>/dev/null | awk '{printf "%s %s  ", $1, $2}')"
	} >&2
fi

if [[ "$mode" == print-path ]]; then
	printf '%s\n' "$BIN"
else
	# shellcheck disable=SC2016 # $PATH is for the caller's eval to expand
	printf 'export PATH="%s:$PATH"\n' "$BIN"
fi
