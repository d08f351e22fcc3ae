"""The mocks: what each resource and read returns, and a monitor that records every registration."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any, Callable

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings

from components.tls import CA_COMMAND, CERTIFICATE_COMMAND
from tools.mocks.record import Registered, _unwrap


COMMAND = "command:local:Command"
# What each of the lab's certificate commands printed, by its command line and stdin: like the
# engine's state, a second run with the same inputs gets the same keys and certificates.
_CERTIFICATES: dict[str, str] = {}


def _run_certificates(inputs: dict) -> str:
    """Run a certificate command of the lab (components/certificates.py) in-process, as the engine would run it."""
    from components import certificates

    inputs = _unwrap(inputs, "", set())  # the command sees secrets as plain values, as with the engine
    key = json.dumps([inputs["create"], inputs["stdin"]], sort_keys=True)
    if key not in _CERTIFICATES:
        what = {CA_COMMAND: "ca", CERTIFICATE_COMMAND: "certificate"}[inputs["create"]]
        _CERTIFICATES[key] = json.dumps(certificates.run(what, json.loads(inputs["stdin"])))
    return _CERTIFICATES[key]


class LabMocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs, with plausible values for the outputs the program reads.

    The lab's certificate commands print what components/certificates.py prints. ``state_for[type](args) ->
    dict`` lets a test give one resource type richer outputs.
    """

    def __init__(self) -> None:
        self.state_for: dict[str, Callable[[pulumi.runtime.MockResourceArgs], dict]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == COMMAND and args.inputs.get("create") in (CA_COMMAND, CERTIFICATE_COMMAND):
            state["stdout"] = _run_certificates(args.inputs)
        elif args.typ == COMMAND:
            # Node preparation prints the host-only NIC's name; the rest print "<name>-stdout".
            state.setdefault("stdout", "eth1" if args.name.endswith("-prepare") else f"{args.name}-stdout")
        if args.typ == COMMAND:
            state.setdefault("stderr", "")
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
        self.invokes: list[tuple[str, dict]] = []
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

    def Invoke(self, request):  # noqa: N802 (gRPC name)
        # A function the program calls through a provider (helm.v3.Chart's `helm template`, say).
        self.invokes.append((request.tok, _unwrap(json_format.MessageToDict(request.args), "", set())))
        return super().Invoke(request)

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
        # Each alias as the engine gets it: {"urn": ...} or {"spec": {"name": ...}}.
        "aliases": [json_format.MessageToDict(alias) for alias in request.aliases],
        "version": request.version,
        "replace_with": list(request.replace_with),
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
