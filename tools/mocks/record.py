"""What a run under mocks registered: each resource as the engine saw it, and the run's outputs."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pulumi

_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_SIG = "4dabf18193072939515e22adb298388d"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


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
    invokes: list[tuple[str, dict]] = field(default_factory=list)  # provider functions called: (token, args)

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
        """True when ``later`` cannot start before ``earlier`` is done: the step graph's "waits for"
        (dependencies, provider and parent; a component meaning each of its members)."""
        from tools.stepgraph import Registrations

        return Registrations(self).waits_for(later.urn, earlier.urn)


def _unwrap(value: Any, path: str, secrets: set[str]) -> Any:
    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET_SIG:
            secrets.add(path or "(value)")
            return _unwrap(value.get("value"), path, secrets)
        return {k: _unwrap(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value
