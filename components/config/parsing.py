"""From raw stack config to a :class:`LabConfig`: the shape first, then the lab as a whole, every
problem reported at once under the key path ``pulumi config set --path`` spells.
"""

from __future__ import annotations

import copy
import difflib
import re
import typing
from pathlib import Path
from typing import Any, Mapping, Optional

from pydantic import BaseModel, ValidationError

from components.config.checks import check_lab
from components.config.defaults import PROJECT_ROOT
from components.config.kubeconfig import resolve_cluster
from components.config.neighbours import neighbour_warnings
from components.config.offline import with_bundle_sources
from components.config.problems import ConfigError, Problem, did_you_mean, kind_of
from components.config.schema import LabConfig


def _format_loc(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "(root)"


def _model_of(annotation: Any) -> Optional[type[BaseModel]]:
    """The pydantic model inside an annotation such as ``Optional[X]`` or ``tuple[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found:
            return found
    return None


def _is_sequence(annotation: Any) -> bool:
    """True for ``tuple[X, ...]`` and ``Optional[tuple[X, ...]]``."""
    if typing.get_origin(annotation) is tuple:
        return True
    return any(_is_sequence(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def _strip_unknown(model: type[BaseModel], data: Any) -> Any:
    """``data`` without the keys ``model`` does not know (already reported), so the rest can be checked."""
    if not isinstance(data, Mapping):
        return data
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    kept = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            continue
        sub = _model_of(field.annotation)
        if sub is not None and _is_sequence(field.annotation) and not isinstance(value, list):
            pass  # pydantic reports it as not a list
        elif sub is not None and isinstance(value, list):
            value = [_strip_unknown(sub, item) for item in value]
        elif sub is not None:
            value = _strip_unknown(sub, value)
        kept[key] = value
    return kept


def _unknown_keys(model: type[BaseModel], data: Any, loc: tuple) -> list[Problem]:
    """Typos, with the keys that are allowed and the closest match."""
    if not isinstance(data, Mapping):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    problems = []
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            known = ", ".join(k for k in fields if k not in ("stack", "warnings"))
            problems.append(
                Problem(_format_loc(loc + (key,)), f"unknown key{did_you_mean(str(key), fields)} (allowed here: {known})")
            )
            continue
        sub = _model_of(field.annotation)
        if sub is None:
            continue
        if _is_sequence(field.annotation) and not isinstance(value, list):
            continue  # pydantic says "expected a list"; its entries are not keys
        if isinstance(value, list):
            for i, item in enumerate(value):
                problems += _unknown_keys(sub, item, loc + (key, i))
        else:
            problems += _unknown_keys(sub, value, loc + (key,))
    return problems


_TYPE_HINTS = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "tuple_type": "expected a list (one `- ...` line per entry)",
    "model_type": "expected a mapping of keys",
    "dict_type": "expected a mapping of keys",
}


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt])i?b?\s*$", re.IGNORECASE)
_MB_PER_UNIT = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def _unit_hint(loc: tuple, given: Any) -> str:
    """``memory_mb: 4G`` -> "; memory_mb is in megabytes: write 4096"."""
    if not loc or loc[-1] != "memory_mb" or not isinstance(given, str):
        return ""
    match = _SIZE.match(given)
    if not match:
        return "; memory_mb is a whole number of megabytes, e.g. 4096"
    megabytes = float(match.group(1)) * _MB_PER_UNIT[match.group(2).lower()]
    return f"; memory_mb is in megabytes: write {int(megabytes)}"


def _shape_problems(errors: list[dict]) -> list[Problem]:
    """pydantic's errors as problems, without the echo of an entry's error on the list that holds it."""
    locs = [tuple(e["loc"]) for e in errors]
    kept = [
        e
        for e in errors
        # A tuple with a min_length counts only the entries that passed: "at least 1 item, not 0" is
        # the same problem as its one bad entry, already reported.
        if not (e["type"] == "too_short" and any(len(other) > len(e["loc"]) and other[: len(e["loc"])] == tuple(e["loc"]) for other in locs))
    ]
    return [_problem_from_pydantic(e) for e in kept]


def _problem_from_pydantic(error: dict) -> Problem:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = error["type"]
    given = error.get("input")
    if kind == "missing":
        message = "is required but missing"
    elif kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind in _TYPE_HINTS:
        shown = f"a {kind_of(given)}" if isinstance(given, (Mapping, list)) else repr(given)
        message = f"{_TYPE_HINTS[kind]}, got {shown}{_unit_hint(loc, given)}"
    elif kind == "literal_error":
        message = f"{given!r} is not allowed; {error['msg'][0].lower()}{error['msg'][1:]}"
        if loc and loc[0] == "apps":
            loc = loc[:2]
    else:
        message = f"{error['msg']} (got {given!r})"
    return Problem(_format_loc(loc), message)


def parse(
    raw: Mapping[str, Any], *, stack: str, secret_keys: frozenset[str] = frozenset(), project_dir: Path = PROJECT_ROOT
) -> LabConfig:
    """Validate raw stack config (keys without the namespace) into a :class:`LabConfig`.

    Raises :class:`ConfigError` listing every problem found. The other stack files of
    ``project_dir`` are read for what this stack would clash with (warnings).
    """
    problems = _unknown_keys(LabConfig, raw, ())
    for key in ("stack", "warnings"):
        if key in raw:
            problems.append(Problem(key, "is set by the program, not by stack config; remove it"))
    data = _strip_unknown(LabConfig, {k: v for k, v in raw.items() if k not in ("stack", "warnings")})

    warnings: list[str] = []
    problems += resolve_cluster(data, secret_keys, warnings)
    if "network" not in data:
        problems.append(Problem("network.cidr", "is required: the host-only network, e.g. {cidr: 192.168.56.0/24}"))
        raise ConfigError(problems)
    # The shape first; then, so that every problem is reported at once, the lab as a whole, on
    # the config with each ill-shaped value left out (its default, or its entry dropped).
    # Problems of the lab stage under a key that was left out are not reported: they could
    # stem from the omission.
    left_out: list[tuple] = []
    for p in problems:
        top = _top_key(p.path)
        left_out.append((top,))
        # A misspelt section (metalb) leaves the real one (metallb) at its defaults: not a problem of its own.
        left_out += [(close,) for close in difflib.get_close_matches(top, list(LabConfig.model_fields), n=1, cutoff=0.6)]
    candidate: dict = data
    cfg = None
    for attempt in range(4):
        try:
            cfg = LabConfig.model_validate({**candidate, "stack": stack})
            break
        except ValidationError as err:
            errors = err.errors()
            if attempt == 0:
                reported = {p.path for p in problems}
                problems += [p for p in _shape_problems(errors) if p.path not in reported]
            locs = [_repair_loc(e) for e in errors]
            left_out += locs
            candidate = _without(candidate, locs)
    if cfg is None:
        raise ConfigError(problems)

    lab_problems, lab_warnings = check_lab(cfg)
    hidden = {_section(loc[0]) for loc in left_out if loc}
    problems += [p for p in lab_problems if _section(_top_key(p.path)) not in hidden]
    if problems:
        raise ConfigError(problems)
    lab_warnings += neighbour_warnings(cfg, project_dir)
    cfg = with_bundle_sources(cfg)
    return cfg.model_copy(update={"warnings": tuple(warnings + lab_warnings)})


def _top_key(path: str) -> str:
    """``metallb.pools[0].name`` -> ``metallb``."""
    return path.split(".")[0].split("[")[0]


def _section(key: Any) -> str:
    """Keys whose checks depend on each other: the ingress and DNS IPs must sit in a MetalLB pool."""
    return "metallb" if key in ("ingress", "dns") else str(key)


def _repair_loc(error: dict) -> tuple:
    """What to leave out for an error: the value itself, or the entry missing a required key."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    return loc[:-1] if error["type"] == "missing" and len(loc) > 1 else loc


def _without(data: dict, locs: list[tuple]) -> dict:
    """A deep copy of ``data`` with the value at each loc removed (list entries deepest-last first)."""
    result = copy.deepcopy(data)
    for loc in sorted(locs, key=lambda l: [(0, p) if isinstance(p, int) else (1, str(p)) for p in l], reverse=True):
        target: Any = result
        for part in loc[:-1]:
            try:
                target = target[part]
            except (KeyError, IndexError, TypeError):
                target = None
                break
        if isinstance(target, dict):
            target.pop(loc[-1], None)
        elif isinstance(target, list) and isinstance(loc[-1], int) and loc[-1] < len(target):
            del target[loc[-1]]
    return result
