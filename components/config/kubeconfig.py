"""``cluster.kubeconfig``: a path or the kubeconfig itself, turned into its content and checked
without ever showing it (it holds credentials).
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Mapping, Optional

import yaml

from components.config.problems import Problem, did_you_mean, kind_of


def resolve_cluster(data: dict, secret_keys: frozenset[str], warnings: list[str]) -> list[Problem]:
    """Turn cluster.kubeconfig from a path into the file's content, checking the context exists."""
    cluster = data.get("cluster")
    if cluster is None:
        return []
    if not isinstance(cluster, Mapping):
        return [Problem("cluster", "expected a mapping such as {kubeconfig: ~/.kube/config, context: kind-lab}")]
    if cluster.get("render_yaml_to_directory"):
        if cluster.get("kubeconfig") or cluster.get("context"):
            key = "cluster.kubeconfig" if cluster.get("kubeconfig") else "cluster.context"
            return [
                Problem(
                    key,
                    "cannot be combined with cluster.render_yaml_to_directory (the Kubernetes provider refuses "
                    "both: rendering contacts no cluster); remove one of them",
                )
            ]
        return []
    if not cluster.get("kubeconfig"):
        return [Problem("cluster.kubeconfig", "is required in existing-cluster mode: a kubeconfig path or its content")]
    value = cluster["kubeconfig"]
    if not isinstance(value, str):
        return [Problem("cluster.kubeconfig", f"expected a kubeconfig path or its content as a string, got a {kind_of(value)}")]
    if "\n" in value or value.lstrip().startswith(("apiVersion", "{")):
        content, where = value, "the kubeconfig given inline"
        if "cluster" not in secret_keys:
            warnings.append(
                "cluster.kubeconfig holds credentials in plain text in the stack file; store it with "
                "`pulumi config set --secret --path cluster.kubeconfig \"$(cat <file>)\"`"
            )
    else:
        content, where, problem = _read_kubeconfig_file(value)
        if problem:
            return [Problem("cluster.kubeconfig", problem)]
    # Messages name where the kubeconfig came from and what is wrong, never its content.
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as err:
        return [Problem("cluster.kubeconfig", f"{where} is not valid YAML ({err.__class__.__name__})")]
    if isinstance(document, str) and _is_base64_kubeconfig(document):
        return [Problem("cluster.kubeconfig", BASE64_KUBECONFIG)]
    if not isinstance(document, Mapping) or not document.get("clusters"):
        return [Problem("cluster.kubeconfig", f"{where} has no clusters; is it a kubeconfig?")]
    for key in ("clusters", "contexts", "users"):
        entries = document.get(key)
        if entries is not None and not (isinstance(entries, list) and all(isinstance(e, Mapping) for e in entries)):
            return [
                Problem(
                    "cluster.kubeconfig",
                    f"{where}: `{key}` is a {kind_of(entries)}, not a list of entries; is it a kubeconfig? "
                    "(`kubectl config view` shows what kubectl makes of it)",
                )
            ]
    contexts = [c.get("name") for c in document.get("contexts") or []]
    context = cluster.get("context")
    if context is not None and context not in contexts:
        return [
            Problem(
                "cluster.context",
                f"{context!r} is not a context of {where} (it has: {', '.join(map(str, contexts)) or 'none'})"
                f"{did_you_mean(str(context), map(str, contexts))}",
            )
        ]
    data["cluster"] = {**cluster, "kubeconfig": content}
    return []


BASE64_KUBECONFIG = (
    "holds a base64-encoded kubeconfig; give the kubeconfig itself (decode it with `base64 -d`) or the path "
    "of its file (the value is not shown: it holds credentials)"
)


def _is_base64_kubeconfig(value: str) -> bool:
    try:
        decoded = base64.b64decode("".join(value.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return "clusters" in decoded or "apiVersion" in decoded


def _looks_like_a_path(value: str) -> bool:
    return len(value) < 1024 and ("/" in value or value.startswith(("~", ".")) or "." in value[1:])


def _read_kubeconfig_file(value: str) -> tuple[str, str, Optional[str]]:
    """(content, where, problem) of a kubeconfig given as a path; the value is shown only when it looks like one."""
    stripped = value.strip()
    path = Path(os.path.expanduser(stripped))
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError):  # a name too long for a path, or a NUL in it
        is_dir = is_file = False
    if is_dir:
        return "", "", f"{path} is a directory; give the kubeconfig file inside it, e.g. {path / 'config'}"
    if is_file:
        try:
            return path.read_bytes().decode("utf-8"), str(path), None
        except UnicodeDecodeError:
            return "", "", f"{path} is not a UTF-8 text file; is it a kubeconfig?"
        except OSError as err:
            return "", "", f"{path} cannot be read ({err.strerror})"
    if _is_base64_kubeconfig(stripped):
        return "", "", BASE64_KUBECONFIG
    if _looks_like_a_path(stripped):
        return "", "", f"file {path} does not exist; give the path of a kubeconfig or its content"
    return "", "", (
        "is neither the path of an existing file nor a kubeconfig (the value is not shown: it may hold credentials); "
        "give a path such as ~/.kube/config or the kubeconfig's YAML"
    )
