"""A stack's config as the CLI hands it to the program: ``Pulumi.yaml`` defaults, the stack file,
and overrides by ``pulumi config set --path`` paths."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
PROJECT = "k8s-lab"


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
