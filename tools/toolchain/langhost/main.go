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
	if err := tc.ValidateVenv(ctx); err != nil {
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
