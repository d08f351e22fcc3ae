"""A local Helm chart's Chart.yaml, and whether its ``kubeVersion`` admits a Kubernetes version.

Helm refuses to template a chart whose ``kubeVersion`` constraint leaves out the cluster's version
(or, with no cluster, the version the lab renders for). It says so only once `up` has started,
and when other objects are being registered at the same moment the engine may report a
cancelled call instead of Helm's words. Where the lab knows the version (the cluster it builds,
or render mode) and the chart is on disk, the check runs with the other configuration checks.

The constraint syntax is Helm's (Masterminds/semver): ``||`` between alternatives, comparators
(``=``, ``!=``, ``>``, ``<``, ``>=``, ``<=``, ``~``, ``^``, or none) separated by spaces or commas,
and hyphen ranges (``1.25.0 - 1.30.0``). A pre-release tag (the usual ``-0``) in a constraint
only widens it to pre-releases, which a Kubernetes release is not: ``>=1.25.0-0`` admits 1.25.0
and everything after it. A partial or wildcard version (``1.25``, ``1.x``) is judged only with
``>=``, ``<``, ``~`` and ``^``, where every reading agrees. What this does not read it does not
judge (None): Helm will, during `up`.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import Any, Optional

import yaml

_COMPARATOR = re.compile(
    r"^(=|!=|>=|<=|>|<|~>|~|\^)?\s*v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
)
Release = tuple[int, int, int]


def chart_metadata(path: Path) -> Optional[dict[str, Any]]:
    """The Chart.yaml of a local chart (a directory or a .tgz), None when it cannot be read."""
    try:
        if path.is_dir():
            text = (path / "Chart.yaml").read_text()
        else:
            with tarfile.open(path) as archive:
                member = next(m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
                text = archive.extractfile(member).read().decode()  # type: ignore[union-attr]
        data = yaml.safe_load(text)
        return data if isinstance(data, dict) else None
    except (OSError, StopIteration, tarfile.TarError, yaml.YAMLError, AttributeError, UnicodeDecodeError):
        return None


def _release(version: str) -> Release:
    major, minor, patch = (int(p) for p in version.lstrip("v").split("-")[0].split(".")[:3])
    return major, minor, patch


def _comparator(text: str, version: Release) -> Optional[bool]:
    match = _COMPARATOR.match(text.strip())
    if match is None:
        return None
    op, *parts, pre = match.groups()
    op = op or "="
    given = [p for p in parts if p is not None]
    wild = next((i for i, p in enumerate(given) if p in ("x", "X", "*")), len(given))
    numbers = [int(p) for p in given[:wild]]
    if not numbers:  # "*" or "x": any version
        return op not in ("<", ">", "!=")
    floor = (numbers + [0, 0])[:3]
    low: Release = (floor[0], floor[1], floor[2])
    exact = len(numbers) == 3
    if op in ("~", "~>"):
        # ~1.25.3 and ~1.25: >=1.25.x <1.26; ~1: >=1 <2.
        bump = 0 if len(numbers) == 1 else 1
        ceiling = (low[0] + 1, 0, 0) if bump == 0 else (low[0], low[1] + 1, 0)
        return low <= version < ceiling
    if op == "^":
        # ^1.8.0: >=1.8.0 <2.0.0; ^0.3.1: >=0.3.1 <0.4.0; ^0.0.4: <0.0.5.
        if low[0] > 0 or len(numbers) == 1:
            ceiling = (low[0] + 1, 0, 0)
        elif low[1] > 0 or len(numbers) == 2:
            ceiling = (0, low[1] + 1, 0)
        else:
            ceiling = (0, 0, low[2] + 1)
        return low <= version < ceiling
    if not exact:
        # A partial or wildcard version means the same to every reading only here: >=1.25 is
        # >=1.25.0 and <1.25 is <1.25.0. Whether =1.25 or >1.25 covers 1.25.4 depends on the
        # library: leave it to Helm.
        return {">=": version >= low, "<": version < low}.get(op)
    if pre:
        # 1.25.0-0 sits just below 1.25.0: for a release, >= and > mean >= 1.25.0, < and <= mean < 1.25.0.
        return {"=": False, "!=": True, ">": version >= low, ">=": version >= low, "<": version < low, "<=": version < low}[op]
    return {"=": version == low, "!=": version != low, ">": version > low, ">=": version >= low, "<": version < low, "<=": version <= low}[op]


def kube_version_admits(constraint: str, version: str) -> Optional[bool]:
    """Whether Helm's ``kubeVersion`` ``constraint`` admits Kubernetes ``version`` (a release such as
    1.36.1); None when the constraint is not one this module can read."""
    try:
        release = _release(version)
    except ValueError:
        return None
    any_group = False
    for group in constraint.split("||"):
        group = group.strip()
        hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", group)
        comparators = [f">={hyphen.group(1)}", f"<={hyphen.group(2)}"] if hyphen else [c for c in re.split(r"[\s,]+", group) if c]
        # "> =1.2" style gaps: an operator alone joins the version after it.
        joined: list[str] = []
        for c in comparators:
            if joined and re.fullmatch(r"=|!=|>=|<=|>|<|~>|~|\^", joined[-1]):
                joined[-1] += c
            else:
                joined.append(c)
        results = [_comparator(c, release) for c in joined]
        if not joined or None in results:
            return None
        any_group = any_group or all(results)
    return any_group
