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
